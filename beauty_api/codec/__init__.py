"""Image conversions: anything a user hands us -> `SourceImage` -> upload bytes, and result bytes -> arrays.

No HTTP here. torch is imported lazily (only when a tensor comes in or goes out), so the CLI and
the emulator run without it. Where each step lives:

- images.py           SourceImage, EncodedImage, the API's size limits, the one resize
- image_input.py      tensor / numpy / PIL / file path / bytes -> SourceImage
- safe_open.py        opening encoded bytes: format sniffed first, size checked before decoding
- upload_encoding.py  SourceImage -> EncodedImage (PNG if it fits, else JPEG, downscaled if needed)
- png_writer.py       the PNG encoder and its sampled size estimate
- lazy_sources.py     inputs converted one at a time, when their turn comes (flat memory in long batches)
- results.py          result bytes -> RGB array, back to the source size, alpha, tensor, file

This package's namespace is the public API: import from `beauty_api.codec`.
"""

from .image_input import image_file_size, images_from_input, load_image_file
from .images import (
    JPEG_QUALITY,
    MAX_DECODE_PIXELS,
    MAX_SIDE,
    MAX_UPLOAD_BYTES,
    MIN_SIDE,
    EncodedImage,
    SourceImage,
)
from .lazy_sources import LazySources, lazy_batch, lazy_files
from .results import attach_alpha, decode_image, fit_to_size, save_image, to_comfy_tensor
from .upload_encoding import UPLOAD_POLICY_VERSION, encode_for_upload

__all__ = [
    "JPEG_QUALITY",
    "MAX_DECODE_PIXELS",
    "MAX_SIDE",
    "MAX_UPLOAD_BYTES",
    "MIN_SIDE",
    "UPLOAD_POLICY_VERSION",
    "EncodedImage",
    "LazySources",
    "SourceImage",
    "attach_alpha",
    "decode_image",
    "encode_for_upload",
    "fit_to_size",
    "image_file_size",
    "images_from_input",
    "lazy_batch",
    "lazy_files",
    "load_image_file",
    "save_image",
    "to_comfy_tensor",
]
