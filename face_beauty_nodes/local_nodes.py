"""The offline nodes: Face Beauty Face Mask and Face Beauty (Local), computed on this machine.

They use the local engine (beauty_api/local: MediaPipe's face models run by torch), so they need
no key and no network. Heavy imports happen inside the node functions, so ComfyUI's start-up
and the API nodes never pay for loading torch models.
"""

from __future__ import annotations

from typing import Any

from ..beauty_api import codec
from ..beauty_api.local.faces.limits import MAX_FACES
from ..beauty_api.params import BeautyParams
from ..beauty_api.run.backend import DEFAULT_OPTIONS, RetouchBackend
from . import bridge
from .runner import FaceBeautyProError, RunPlan, run_retouch
from .widgets import CATEGORY, max_faces_widget, retouch_widgets

# -- Face Beauty Face Mask (offline face analysis, no API) ----------------------------------------


class FaceBeautyFaceMask:
    """A soft mask of a face region for every image, from MediaPipe's face mesh run locally by torch."""

    DESCRIPTION = (
        "Finds the faces in every image (offline: Google's MediaPipe face detector and 478-point "
        "face mesh, run by torch on your machine; free, nothing is uploaded) and outputs a soft "
        "mask of the chosen region: face, skin (face without eyes, brows, lips and nostrils), "
        "eyes, brows or lips. Use it to limit any effect to the face, the skin or the eyes. "
        "An image without a face gives an empty (black) mask."
    )
    CATEGORY = CATEGORY
    FUNCTION = "mask"
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("mask",)
    OUTPUT_TOOLTIPS = ("One mask per input image (same width and height): 1 inside the region, 0 outside.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, Any]]:
        from ..beauty_api.local.faces.regions import REGIONS

        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Image(s) to find faces in; one mask per image."}),
                "region": (
                    list(REGIONS),
                    {
                        "default": "skin",
                        "tooltip": "Which part of every face: face (the whole oval), skin (face without "
                        "eyes, brows, lips and nostrils), eyes / left_eye / right_eye, brows / left_brow "
                        "/ right_brow, lips. Left and right are the person's own.",
                    },
                ),
                "feather": (
                    "FLOAT",
                    {
                        "default": 6.0,
                        "min": 0.0,
                        "max": 256.0,
                        "step": 0.5,
                        "tooltip": "Width in pixels of the soft edge, centred on the region's outline "
                        "(0 = a crisp, anti-aliased edge).",
                    },
                ),
                "grow": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": -256.0,
                        "max": 256.0,
                        "step": 0.5,
                        "tooltip": "Moves the outline outward by this many pixels (negative shrinks it).",
                    },
                ),
                "max_faces": max_faces_widget(),
                "video": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "Treat the batch as frames of one video: faces are tracked from frame "
                        "to frame and smoothed, so masks do not flicker. Off: each image on its own.",
                    },
                ),
            }
        }

    def mask(
        self,
        image: Any,
        region: str,
        feather: float,
        grow: float,
        max_faces: int = MAX_FACES,
        video: bool = False,
    ) -> tuple[Any]:
        """Analyse each image (or track the batch) and rasterise the region's mask."""
        from ..beauty_api.local.needs import EngineUnavailable, require

        try:
            require("Face Beauty Face Mask")
        except EngineUnavailable as error:
            raise FaceBeautyProError(str(error)) from None
        import torch

        from ..beauty_api.local.faces.analysis import load_analyzer
        from ..beauty_api.local.faces.models import ModelFileError
        from ..beauty_api.local.faces.regions import region_mask

        if image.dim() != 4 or image.shape[-1] not in (1, 2, 3, 4):
            raise FaceBeautyProError(
                f"Face Mask: expected an IMAGE batch (B x H x W x channels), got shape {tuple(image.shape)}; "
                "connect an image output (Load Image, VAE Decode, ...)"
            )
        if image.shape[-1] < 3:  # gray (or gray + alpha): the face models see it as gray RGB
            image = image[..., :1].expand(-1, -1, -1, 3)
        try:
            shared = load_analyzer(image.device)
        except (ModelFileError, ImportError) as error:
            raise FaceBeautyProError(str(error)) from None
        analyzer = shared.configured(max_faces=max_faces)
        _, height, width, _ = image.shape
        if video:
            per_image = analyzer.track(image)
        else:
            per_image = []
            for start in range(0, image.shape[0], 8):  # the faces of 8 images go through the mesh together
                bridge.check_interrupted()
                per_image += analyzer.analyze_batch(image[start : start + 8])
        masks = [
            region_mask(faces, height, width, region, feather=feather, grow=grow, device=image.device)
            for faces in per_image
        ]
        return (torch.stack(masks),)


# -- Face Beauty (Local) --------------------------------------------------------------------------


class FaceBeautyLocal:
    """Face Beauty (Local): the same sliders and filter list as Face Beauty Pro, computed on this machine."""

    DESCRIPTION = (
        "Retouches every portrait (or video frame) of the batch on this machine: free, offline, no key, "
        "nothing uploaded. The same six sliders and 35 filter names as Face Beauty Pro, in the same "
        "order, so one node can replace the other with its settings: use it to preview before paying "
        "for the API, or when the API's exact look is not needed. The looks are our own design inspired "
        "by the API's names (the API's are not published). Faces are found with MediaPipe's face mesh run "
        "by torch; an image without a face gets the filter only and the report says 'no face'. The same "
        "input and settings give the same output on the same machine (a different number of CPU threads "
        "may change a few pixels by one level)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "retouch"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("image", "report")
    OUTPUT_TOOLTIPS = (
        "The retouched images: same batch size, order, width and height as the input.",
        "Per image: the faces found ('no face' when none) and seconds; 0 credits.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, Any]]:
        required: dict[str, Any] = {
            "image": ("IMAGE", {"tooltip": "Portrait(s) or video frames to retouch on this machine."}),
            **retouch_widgets(),
        }
        return {
            "required": required,
            "optional": {
                "video": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "Treat the batch as frames of one video: faces are tracked from frame "
                        "to frame and smoothed, so the reshaping does not jitter. Off: each image on its own.",
                    },
                ),
                "max_faces": max_faces_widget(),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    async def retouch(
        self,
        image: Any,
        whitening: int,
        smoothing: int,
        thinface: int,
        shrink_face: int,
        enlarge_eye: int,
        remove_eyebrow: int,
        filter_type: str,
        video: bool = False,
        max_faces: int = MAX_FACES,
        unique_id: str | None = None,
    ) -> tuple[Any, str]:
        """Retouch the batch in a worker thread, with Face Beauty Pro's run loop: the same progress,
        node text, Cancel and error messages (runner.py), 0 credits."""

        def make_params() -> BeautyParams:
            return BeautyParams(
                whitening=whitening,
                smoothing=smoothing,
                thinface=thinface,
                shrink_face=shrink_face,
                enlarge_eye=enlarge_eye,
                remove_eyebrow=remove_eyebrow,
                filter_type=filter_type,
            )

        def make_backend() -> RetouchBackend:
            from ..beauty_api.local.needs import EngineUnavailable, require

            try:
                require("Face Beauty (Local)")
            except EngineUnavailable as error:
                raise FaceBeautyProError(str(error)) from None
            from ..beauty_api.local.retouch.backend import LocalBackend

            # CPU: the path the tests and benchmarks measure (LocalEngine takes a device).
            return LocalBackend(
                device="cpu", video=codec.lazy_batch(image) if video else None, max_faces=max_faces
            )

        plan = RunPlan(
            make_backend=make_backend, retouch_options=DEFAULT_OPTIONS, concurrency=1, pass_through=False
        )
        return await run_retouch(image, make_params, plan, None if unique_id is None else str(unique_id))
