"""Where `retouch` writes: one output file per input, the folder to create, clashes refused."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

SAVE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
DEFAULT_SUFFIX = ".png"


def _is_folder_target(output: str, count: int) -> bool:
    """Several inputs always go to a folder; one input goes to a folder when -o clearly names one."""
    path = Path(output)
    return count > 1 or path.is_dir() or output.endswith(("/", os.sep)) or not path.suffix


def plan_outputs(inputs: Sequence[Path], output: str) -> tuple[list[Path], Path | None, list[str]]:
    """Output file per input (same stem), the folder to create, and any problem with them."""
    target = Path(output)
    if _is_folder_target(output, len(inputs)):
        if target.exists() and not target.is_dir():
            return (
                [],
                None,
                [f"-o {output}: exists and is not a folder; with several inputs, -o is a folder."],
            )
        problem = _unwritable(target)
        outputs = [target / (path.stem + DEFAULT_SUFFIX) for path in inputs]
        return outputs, target, ([problem] if problem else []) + _clashes(inputs, outputs)
    if target.suffix.lower() not in SAVE_SUFFIXES:
        return [], None, [f"-o {output}: unsupported file type; use one of {', '.join(SAVE_SUFFIXES)}."]
    problem = _unwritable(target.parent)
    outputs = [target] * len(inputs)
    return outputs, target.parent, ([problem] if problem else []) + _clashes(inputs, outputs)


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be written into `folder` (created later if missing), or None."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"-o: {probe} is a file, so the folder {folder} cannot be created."
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        return f"-o: no permission to write in {probe}."
    return None


def _clashes(inputs: Sequence[Path], outputs: Sequence[Path]) -> list[str]:
    """Two inputs written to one file, or an input overwritten by its own result."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    sources = {_real(path): number for number, path in enumerate(inputs, start=1)}
    for number, (source, target) in enumerate(zip(inputs, outputs, strict=True), start=1):
        key = _real(target)
        if key in seen:
            problems.append(
                f"inputs {seen[key]} and {number} ({source}) would both be written to {target}; rename one."
            )
        seen.setdefault(key, number)
        if key in sources:
            problems.append(
                f"input {sources[key]} ({inputs[sources[key] - 1]}) would be overwritten by a result."
            )
    return problems


def _real(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def save_atomically(target: Path, image: object) -> None:
    """Write next to the target, then rename: an interrupted run never leaves half a file."""
    from ..codec import save_image

    temp = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")
    try:
        save_image(temp, image)  # type: ignore[arg-type]
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()
