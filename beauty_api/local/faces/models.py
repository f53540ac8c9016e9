"""The shipped MediaPipe model files: where they are, their SHA-256 check, and loading them as torch modules.

The .tflite files are Google's, unmodified (see models/NOTICE.md, Apache-2.0). Nothing is downloaded: a
missing or altered file is a `ModelFileError` that says which file and how to fix it. The expected
hashes are written here as well as in models/SHA256SUMS, so an edited SHA256SUMS cannot hide a change.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import fx

from ...errors import BeautyError
from .tflite_reader import read_tflite
from .torch_graph import build_torch_module

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DETECTOR_FILE = "face_detection_short_range.tflite"
MESH_FILE = "face_landmarks_detector.tflite"
FULL_RANGE_DETECTOR_FILE = "face_detection_full_range.tflite"
EXPECTED_SHA256 = {
    DETECTOR_FILE: "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    FULL_RANGE_DETECTOR_FILE: "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
    MESH_FILE: "c7d54204ce0448474c7f3fa9af494787c0965cbdd6f20fc72867e43046bd43d5",
}


class ModelFileError(BeautyError, RuntimeError):
    """A shipped model file is missing or is not the file Google published."""


def read_model_file(name: str, directory: Path | None = None) -> bytes:
    """The bytes of model file `name`, after checking its SHA-256."""
    path = (directory or MODELS_DIR) / name
    if name not in EXPECTED_SHA256:
        raise ModelFileError(f"unknown model file {name!r}: expected one of {', '.join(EXPECTED_SHA256)}")
    if not path.is_file():
        raise ModelFileError(
            f"face analysis model file is missing: {path}. It ships with the pack; reinstall or update "
            "the Face Beauty Pro pack (git pull or ComfyUI-Manager) to restore it."
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != EXPECTED_SHA256[name]:
        raise ModelFileError(
            f"face analysis model file {path} is corrupted or altered (SHA-256 {digest}, expected "
            f"{EXPECTED_SHA256[name]}). Reinstall the Face Beauty Pro pack to restore the original file."
        )
    return data


def load_model(name: str, device: torch.device, directory: Path | None = None) -> fx.GraphModule:
    """Model file `name` as a torch module on `device` (float32, eval mode, no gradients).

    Weights are stored channels-last: on this project's 2-core CPU that made the mesh about 25% faster
    (oneDNN's preferred layout for depthwise convolutions)."""
    module = build_torch_module(read_tflite(read_model_file(name, directory), source=name), source=name)
    return module.to(device=device, memory_format=torch.channels_last)  # type: ignore[call-overload]
