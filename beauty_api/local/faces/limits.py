"""How many faces, and how small, the face analysis looks for by default (no torch import: the CLI
and the nodes show these before any model is loaded)."""

MAX_FACES = 20  # faces per image, best detection scores first
MIN_FACE = 40.0  # px: the smallest face looked for (tiles.py); smaller ones may still be found
MAX_FACES_LIMIT = 64  # the most a setting may ask for
