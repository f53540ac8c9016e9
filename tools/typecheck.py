"""Run mypy (settings in pyproject.toml [tool.mypy]) over beauty_api/, nodes.py and face_beauty_nodes/.

ComfyUI imports the pack folder as a package, so nodes.py imports its siblings relatively
(`from .beauty_api import ...`), and the folder's own name (e.g. `comfyui-face-beauty-pro`) is
not a valid module name. mypy therefore checks the pack through a temporary symlink named
`face_beauty_pro`: the same files, seen as the package ComfyUI makes of them.

Run: `python tools/typecheck.py` (extra arguments go to mypy). Exit status is mypy's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "face_beauty_pro"
TARGETS = [
    "-m",
    PACKAGE,
    "-m",
    f"{PACKAGE}.nodes",
    "-p",
    f"{PACKAGE}.face_beauty_nodes",
    "-p",
    f"{PACKAGE}.beauty_api",
]


def main(extra: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="typecheck-") as view:
        os.symlink(ROOT, Path(view) / PACKAGE, target_is_directory=True)
        command = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            *TARGETS,
            *extra,
        ]
        # Run from the view, so messages name files as face_beauty_pro/beauty_api/....
        env = {**os.environ, "MYPYPATH": view}
        return subprocess.run(command, cwd=view, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
