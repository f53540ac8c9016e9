"""The offline retouch: the API's six controls and 35 looks computed from `Face` landmarks.

tone.py (whitening, smoothing), brows.py (eyebrow removal), warp.py (thinface, shrink_face,
enlarge_eye as one displacement field) and looks.py (the 35 colour looks) are the effects;
engine.py is `LocalEngine`, which finds the faces and applies the effects per face crop; backend.py
is `LocalBackend`, the `RetouchBackend` that the batch, the CLI and the Local node use, videos
included (faces tracked across the frames).
"""
