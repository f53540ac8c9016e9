"""Old module paths (before the packages by concern) keep importing, with a DeprecationWarning.

Scripts written against 0.1 did `from beauty_api.backend import ApiBackend` or
`from beauty_api.local.engine import LocalEngine`; those modules now live in `api/`, `ledger/`,
`run/`, `local/faces/` and `local/retouch/`. The finder below answers the old names with a module
that forwards every attribute to the new ones, so nothing is loaded twice and no state is copied.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence

_API = "protocol transport retry_policy network_failures http_wait result_download client poll_schedule task_timings"
_LEDGER = "fingerprint journal journal_claims journal_rows result_cache cache_blobs cache_meta private_store storage_paths"
_RUN = "resume image_run batch concurrency local_work progress_events"
_FACES = "topology face regions tflite_reader torch_graph detector roi smoothing analysis"
_RETOUCH = "warp tone brows looks engine backend"

# `local.models` is not here: that name is now the folder of the model files (local/faces/models.py
# reads them).
#: old name (relative to beauty_api) -> the new modules that hold what it held, first match wins
MOVED: dict[str, tuple[str, ...]] = {
    **{name: (f"api.{name}",) for name in _API.split()},
    **{name: (f"ledger.{name}",) for name in _LEDGER.split()},
    **{name: (f"run.{name}",) for name in _RUN.split()},
    **{f"local.{name}": (f"local.faces.{name}",) for name in _FACES.split()},
    **{f"local.{name}": (f"local.retouch.{name}",) for name in _RETOUCH.split()},
    "backend": ("run.backend", "run.api_backend"),
    "local.landmarks_cli": ("cli.landmarks",),
    "demo": ("cli.demo_run",),
}


class _Forwarding(types.ModuleType):
    """An old module path: each attribute is read from the new modules (imported on first use)."""

    def __init__(self, name: str, targets: Sequence[str]) -> None:
        super().__init__(name, f"Moved: import from {' or '.join(targets)} instead.")
        self._targets = tuple(targets)

    def __getattr__(self, attribute: str) -> object:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attribute):
                return getattr(module, attribute)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attribute!r}")


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        prefix = self.package + "."
        if not fullname.startswith(prefix) or fullname[len(prefix) :] not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        old = spec.name[len(self.package) + 1 :]
        targets = [f"{self.package}.{new}" for new in MOVED[old]]
        warnings.warn(
            f"{spec.name} moved to {' and '.join(targets)}; import from there (or from {self.package})",
            DeprecationWarning,
            stacklevel=2,
        )
        return _Forwarding(spec.name, targets)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module forwards its attributes."""


def install(package: str) -> None:
    """Answer `package`'s old module paths from now on (idempotent)."""
    if not any(isinstance(f, _MovedFinder) and f.package == package for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder(package))
