"""The offline engine: `faces/` finds faces and their landmarks, `retouch/` applies the controls.

`models/` holds Google's MediaPipe model files (Apache-2.0, with their notice and hashes) and
`data/` the looks' tables. Nothing here imports torch at package import time, so
`import beauty_api.local` stays cheap; `faces` never imports `retouch`.
"""
