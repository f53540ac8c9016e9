"""A re-queue retries what failed: which node runs ended with images still to retouch.

ComfyUI caches a node's output under a signature made of its inputs, its ancestors and the value
its `IS_CHANGED` returns (ComfyUI's execution.py `IsChangedCache`, comfy_execution/caching.py).
A pass-through run in which some images failed still succeeds, so without help ComfyUI would
serve that incomplete output to every later queue and never retry the failed images.

ComfyUI calls `IS_CHANGED` once per queued prompt, before the node runs, with the node's widget
values and hidden inputs; linked inputs (the image, the options) are None there, because it is
called without upstream outputs. So a run is known by the node's id and its widget values, and
`IS_CHANGED` returns how many runs of that key ended incomplete in this process. The value moves
on after each incomplete run and never comes back to an earlier one, so no signature under which
an incomplete output was stored (ComfyUI's LRU cache keeps older ones) is ever matched again; a
run in which every image succeeded leaves it alone, and ComfyUI's cache works as before.
A restart forgets both this record and ComfyUI's own cache of outputs.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping

# Keys remembered at most; the oldest is forgotten first (each is a 64-character digest).
MAX_KEYS = 10_000


def run_key(node_id: object, widgets: Mapping[str, object]) -> str:
    """The identity of a node's request as IS_CHANGED can see it: node id and widget values.

    Numbers are compared by value (ComfyUI may hand a slider over as 50 or 50.0), and any value
    JSON cannot write is written as its text, so building a key never raises.
    """

    def plain(value: object) -> object:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return value

    payload = {
        "node": None if node_id is None else str(node_id),
        "widgets": {str(name): plain(value) for name, value in widgets.items()},
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class IncompleteRuns:
    """Per process: the generation of each key, moved on by every run that left images to retry."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._max_keys = max_keys
        self._generations: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def generation(self, key: str) -> int:
        """What IS_CHANGED returns for `key`: 0 until a run of it ends incomplete."""
        with self._lock:
            return self._generations.get(key, 0)

    def mark_incomplete(self, key: str) -> None:
        """A run of `key` ended with failed (passed through) or unfinished images: run it again."""
        with self._lock:
            self._generations[key] = self._generations.pop(key, 0) + 1
            while len(self._generations) > self._max_keys:
                self._generations.popitem(last=False)


INCOMPLETE_RUNS = IncompleteRuns()
