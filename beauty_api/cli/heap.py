"""The CLI's own process: big image buffers go back to the system as soon as they are freed.

glibc serves a batch's threads from separate heaps ("arenas") and, after the first large buffer
is freed, raises its threshold for serving large buffers from those heaps (up to 32 MiB). Every
thread that ever decoded or encoded a 2048 px image then keeps that memory for later, so the peak
grows with the number of threads, not with the images in flight (figures in docs/development.md,
"Memory"). A fixed threshold of 1 MiB makes each image buffer its own mapping, unmapped when freed.

Only the CLI does this: it owns its process. Inside ComfyUI the allocator is the host's business.
No-op where glibc is absent (macOS, Windows, musl).
"""

from __future__ import annotations

import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
IMAGE_BUFFER_BYTES = 1 << 20


def return_image_buffers_promptly() -> bool:
    """Ask glibc to map buffers of 1 MiB or more on their own; True if it agreed."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, IMAGE_BUFFER_BYTES) == 1
