"""The offline engine: face analysis (MediaPipe's detector and 478-point mesh run by torch), region masks,
and (in a following module set) the retouch itself. Nothing here imports torch at package import time
except the modules that need it, so `import beauty_api.local` stays cheap."""
