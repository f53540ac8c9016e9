"""The ComfyUI side of the pack, beside the root `nodes.py` that ComfyUI and the registry load.

runner.py runs one node call (worker thread, display ticker, Cancel, errors); status.py is what the
node shows (progress bar and text); bridge.py is every call into ComfyUI's own modules, each a no-op
without ComfyUI; widgets.py holds the widgets the API and offline nodes share; local_nodes.py is the
offline nodes (Face Beauty Face Mask, Face Beauty (Local)). All the retouching itself is in
`beauty_api`, which never imports ComfyUI.
"""
