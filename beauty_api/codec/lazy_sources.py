"""Inputs read one at a time, when their turn comes: a batch of any length holds only what is in flight.

`LazySources` is a Sequence of SourceImage that converts item i each time it is asked for and
keeps nothing, so `retouch_batch` (which asks once per image) never has more than its in-flight
images decoded. Checks that need no pixels (the file exists, is an image, its size) belong
before the batch: `image_file_size` reads only the header.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, overload

import numpy as np

from ..errors import ImageError
from .image_input import images_from_input, load_image_file
from .images import SourceImage, is_tensor


class LazySources(Sequence[SourceImage]):
    """`count` images, item i made by `load(i)` on every access (nothing is cached)."""

    def __init__(self, count: int, load: Callable[[int], SourceImage]) -> None:
        self._count = count
        self._load = load

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> SourceImage: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[SourceImage]: ...

    def __getitem__(self, index: int | slice) -> SourceImage | Sequence[SourceImage]:
        if isinstance(index, slice):
            picked = range(self._count)[index]
            return LazySources(len(picked), lambda i: self._load(picked[i]))
        if not -self._count <= index < self._count:
            raise IndexError(f"image {index} of {self._count}")
        return self._load(index % self._count)

    def __repr__(self) -> str:
        return f"LazySources({self._count} images)"


def lazy_files(paths: Sequence[str | os.PathLike[str]]) -> LazySources:
    """Image files, each decoded when asked for (EXIF orientation applied, size checked first)."""
    paths = list(paths)
    return LazySources(len(paths), lambda i: load_image_file(paths[i]))


def lazy_batch(image: Any) -> Sequence[SourceImage]:
    """A [B,H,W,C] tensor or array as images converted one at a time; anything else as `images_from_input`.

    The batch stays as the caller holds it; each item becomes uint8 only while it is in flight.
    """
    if (is_tensor(image) or isinstance(image, np.ndarray)) and getattr(image, "ndim", 0) == 4:
        if image.shape[0] == 0:
            raise ImageError("image batch is empty (batch size 0)")
        return LazySources(int(image.shape[0]), lambda i: images_from_input(image[i])[0])
    return images_from_input(image)
