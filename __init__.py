"""ComfyUI entry point of the Face Beauty Pro pack: the node mappings, nothing else.

Importing this does no network access and no key check (the key is looked up when a node
runs), so a missing key never breaks ComfyUI's startup.
"""

from .nodes import FaceBeautyFaceMask, FaceBeautyLocal, FaceBeautyPro, FaceBeautyProOptions

NODE_CLASS_MAPPINGS = {
    "FaceBeautyPro": FaceBeautyPro,
    "FaceBeautyProOptions": FaceBeautyProOptions,
    "FaceBeautyFaceMask": FaceBeautyFaceMask,
    "FaceBeautyLocal": FaceBeautyLocal,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "FaceBeautyPro": "Face Beauty Pro",
    "FaceBeautyProOptions": "Face Beauty Pro Options",
    "FaceBeautyFaceMask": "Face Beauty Face Mask",
    "FaceBeautyLocal": "Face Beauty (Local)",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
