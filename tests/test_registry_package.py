"""The zip the Comfy Registry serves (and ComfyUI-Manager installs), built by the real `comfy node pack`.

comfy-cli (requirements-registry.txt) zips the git-tracked files that `.comfyignore` does not match.
The test copies what this checkout would commit (tracked files and new ones git does not ignore)
into a fresh git repository, runs `comfy node pack` there, offline and with its telemetry and
update check off, and then checks the zip: small enough, nothing for developers only, nothing a
user runs left out, and the pack loads and retouches from the unzipped folder as ComfyUI runs it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from pack_loader import exec_pack
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MAX_ZIP_BYTES = 5_000_000
# Left out by .comfyignore: for the people who work on the pack, not for those who run it.
DEVELOPER_ONLY = (
    ".ci/",
    "tests/",
    "docs/",
    "benchmarks/",
    "tools/",
    "ARCHITECTURE.md",
    "requirements-dev.txt",
    "requirements-registry.txt",
    ".gitignore",
    ".comfyignore",
)
UNPACKED_NAME = "Registry-Face-Beauty-Pro"  # the unzipped folder, loaded as ComfyUI loads a pack


def comfy_cli_env(home: Path) -> dict[str, str]:
    """comfy-cli without telemetry, without its PyPI update check, with its config in `home`."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(DO_NOT_TRACK="1", COMFY_NO_TELEMETRY="1", COMFY_NO_UPDATE_CHECK="1", HOME=str(home), CI="true")
    return env


def comfy(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "comfy_cli", "--skip-prompt", *args]
    result = subprocess.run(
        command,
        cwd=cwd,
        env=comfy_cli_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"comfy {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def committed_files() -> list[str]:
    """What a commit of this checkout would hold: tracked files and new files git does not ignore."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({name for name in listing.splitlines() if (REPO / name).is_file()})


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """(the zip `comfy node pack` made, the files a commit of this checkout holds)."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: comfy node pack zips git-tracked files")
    source = tmp_path_factory.mktemp("registry-source")
    files = committed_files()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    git = ["git", "-c", "core.autocrlf=false", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=source, check=True)
    subprocess.run([*git, "add", "-A", "-f", "."], cwd=source, check=True)
    comfy(["node", "pack"], cwd=source, home=tmp_path_factory.mktemp("home"))
    yield source / "node.zip", files


@pytest.fixture(scope="module")
def unpacked(shipped: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("custom_nodes") / "comfyui-face-beauty-pro"
    with zipfile.ZipFile(shipped[0]) as archive:
        archive.extractall(folder)
    yield folder
    for key in [key for key in sys.modules if key == UNPACKED_NAME or key.startswith(UNPACKED_NAME + ".")]:
        del sys.modules[key]


def test_the_zip_is_small_and_holds_what_a_user_runs_and_nothing_else(
    shipped: tuple[Path, list[str]],
) -> None:
    archive, files = shipped
    size = archive.stat().st_size
    assert size <= MAX_ZIP_BYTES, (
        f"the registry zip is {size / 1e6:.2f} MB; the limit is {MAX_ZIP_BYTES / 1e6:g} MB"
    )
    names = set(zipfile.ZipFile(archive).namelist())
    user_files = {name for name in files if not name.startswith(DEVELOPER_ONLY)}
    assert names == user_files, (
        f"missing: {sorted(user_files - names)[:10]}; unexpected: {sorted(names - user_files)[:10]}"
    )
    for needed in (
        "__init__.py",
        "nodes.py",
        "face_beauty_nodes/runner.py",
        "beauty_api/local/models/face_landmarks_detector.tflite",
        "beauty_api/local/data/looks.npz",
        "beauty_api/data/sample_portrait.png",
        "example_workflows/Filter showcase.json",
        "example_workflows/Filter showcase.jpg",
        "locales/en/main.json",
        "README.md",
        "LICENSE",
        "requirements.txt",
        "pyproject.toml",
    ):
        assert needed in names, needed


def test_comfy_node_validate_passes_without_security_warnings(tmp_path: Path) -> None:
    """What the registry checks before publishing; its warnings (exec, eval, `a; b`) are to become errors.

    The security check runs `python -m ruff`: without ruff it would print nothing and "pass"."""
    assert importlib.util.find_spec("ruff") is not None, "install requirements-dev.txt (ruff) first"
    answer = comfy(["node", "validate"], cwd=REPO, home=tmp_path)
    output = answer.stdout + answer.stderr  # rich writes its lines to either
    assert "All validation checks passed" in output and "Security warnings" not in output, output


def test_the_pack_loads_from_the_zip_and_imports_every_module(unpacked: Path) -> None:
    pack = exec_pack(UNPACKED_NAME, root=unpacked)
    assert set(pack.NODE_CLASS_MAPPINGS) == {
        "FaceBeautyPro",
        "FaceBeautyProOptions",
        "FaceBeautyFaceMask",
        "FaceBeautyLocal",
    }
    modules = sorted(
        ".".join(path.relative_to(unpacked).with_suffix("").parts)
        for path in unpacked.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py") and path.parent != unpacked
    )
    assert len(modules) > 50
    for module in modules:  # lazy imports too: every module the pack can reach loads from the zip
        loaded = importlib.import_module(f"{UNPACKED_NAME}.{module}")
        assert Path(loaded.__file__).is_relative_to(unpacked), module  # type: ignore[arg-type]


def test_the_offline_retouch_runs_from_the_zip(unpacked: Path) -> None:
    """The models and looks it reads at run time are in the zip: one face found, the look applied."""
    pack = exec_pack(UNPACKED_NAME, root=unpacked)
    portrait = Image.open(unpacked / "beauty_api" / "data" / "sample_portrait.png").convert("RGB")
    image = torch.from_numpy(np.asarray(portrait.resize((256, 256)), dtype=np.float32) / 255.0)[None]
    node: types.ModuleType = pack.NODE_CLASS_MAPPINGS["FaceBeautyLocal"]()
    settings = dict(whitening=60, smoothing=60, thinface=30, shrink_face=0, enlarge_eye=30, remove_eyebrow=0)
    output, report = asyncio.run(node.retouch(image, **settings, filter_type="Calm"))
    assert output.shape == image.shape
    assert "image 1: local, 1 face" in report, report
    assert (output - image).abs().mean() > 0.005
