"""What the offline engine needs besides this package: torch and kornia >= 0.7.1 (ComfyUI ships both).

Every offline command and node asks `require()` first, so a missing or too old package is one line
that says what to install, never a traceback from deep inside the engine.
"""

from __future__ import annotations

import importlib
import re

from ..errors import ConfigurationError

KORNIA_FLOOR = (0, 7, 1)  # ComfyUI's own floor; the engine uses kornia.color's Lab conversion (whitening)
INSTALL = 'pip install torch "kornia>=0.7.1"'


class EngineUnavailable(ConfigurationError):
    """torch or kornia is missing or too old: the offline engine cannot run (nothing was changed)."""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def missing() -> list[str]:
    """The requirements that are not met, as short phrases ("torch", "kornia >= 0.7.1 (found 0.6.12)")."""
    problems: list[str] = []
    for name in ("torch", "kornia"):
        try:
            module = importlib.import_module(name)
        except Exception:  # ImportError, or a broken install that fails while importing
            problems.append(name if name == "torch" else "kornia >= 0.7.1")
            continue
        if name == "kornia" and _version(getattr(module, "__version__", "0")) < KORNIA_FLOOR:
            problems.append(f"kornia >= 0.7.1 (found {module.__version__})")
    return problems


def require(what: str = "the offline engine") -> None:
    """Raise EngineUnavailable (one line: what is missing and the command that installs it)."""
    problems = missing()
    if problems:
        raise EngineUnavailable(
            f"{what} needs {' and '.join(problems)}, which this Python lacks: install with `{INSTALL}` "
            "(ComfyUI's own environment already has them)."
        )
