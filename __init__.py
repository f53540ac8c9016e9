"""ComfyUI entry point of the Face Beauty Pro pack: the node mappings, and the templates' sample input.

Importing this does no network access and no key check (the key is looked up when a node
runs), so a missing key never breaks ComfyUI's startup. The one side effect: the pack's
public-domain sample portrait is copied into ComfyUI's input folder (if absent, under a name
no one else uses), so the example workflows open with a real face instead of ComfyUI's cartoon.
"""

from pathlib import Path

from .face_beauty_nodes.bridge import provide_input_file
from .face_beauty_nodes.local_nodes import FaceBeautyFaceMask, FaceBeautyLocal
from .nodes import FaceBeautyPro, FaceBeautyProOptions

NODE_CLASS_MAPPINGS = {
    "FaceBeautyPro": FaceBeautyPro,
    "FaceBeautyProOptions": FaceBeautyProOptions,
    "FaceBeautyFaceMask": FaceBeautyFaceMask,
    "FaceBeautyLocal": FaceBeautyLocal,
}

# "AILab Retouch" in the name: ComfyUI 0.3.64's node search looks only at names (newer versions
# also read each class's SEARCH_ALIASES), and these are words people type to find the node.
NODE_DISPLAY_NAME_MAPPINGS = {
    "FaceBeautyPro": "Face Beauty Pro (AILab Retouch)",
    "FaceBeautyProOptions": "Face Beauty Pro Options",
    "FaceBeautyFaceMask": "Face Beauty Face Mask",
    "FaceBeautyLocal": "Face Beauty (Local)",
}

# The web extension (web/face_beauty_status.js): keeps the node's last text after the job, where
# frontend 1.58 clears it. ComfyUI serves the folder under /extensions/<pack folder>/.
WEB_DIRECTORY = "./web"

# The file the example workflows' Load Image nodes open (tests/test_workflows.py checks them).
SAMPLE_INPUT_NAME = "face_beauty_pro_sample_portrait.png"

provide_input_file(Path(__file__).parent / "beauty_api" / "data" / "sample_portrait.png", SAMPLE_INPUT_NAME)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
