"""`pip install .` gives a working package: `beauty_api` with its data, and the `face-beauty` command.

Builds a wheel from a copy of the sources (no build isolation, so no network), installs it into a
fresh virtual environment that borrows numpy/Pillow/requests from this one (no download), and runs
the command from an unrelated folder, so nothing can be imported from the checkout by accident.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.packaging


def _run(command: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO_ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "beauty_api", source / "beauty_api", ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    _run([*pip_wheel, "--quiet", "--wheel-dir", str(dist), str(source)], cwd=source)
    (built,) = dist.glob("face_beauty_pro-*.whl")
    return built


def test_the_wheel_holds_the_package_and_its_data_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "beauty_api/data/sample_portrait.png" in names
    assert "beauty_api/emulator/server.py" in names
    top_level = {name.split("/", 1)[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"beauty_api"}  # not nodes.py, tests, workflows, tools or benchmarks
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "face-beauty = beauty_api.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_command_runs_from_another_folder(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # Borrow numpy, Pillow and requests from this environment instead of downloading them.
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path
    )
    Path(site.stdout.strip(), "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        cwd=tmp_path,
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = venv / ("Scripts/face-beauty.exe" if os.name == "nt" else "bin/face-beauty")
    where = _run([str(python), "-c", "import beauty_api; print(beauty_api.__file__)"], cwd=elsewhere)
    assert Path(where.stdout.strip()).is_relative_to(venv)

    assert _run([str(command), "--help"], cwd=elsewhere).stdout.startswith("usage: face-beauty ")
    listing = _run([str(command), "filters"], cwd=elsewhere).stdout.splitlines()
    assert listing[0].split() == ["0", "none"] and listing[-1].split(maxsplit=1) == ["35", "Misty Rain"]

    report = _run([str(command), "demo", "-o", "demo-out"], cwd=elsewhere).stdout
    assert "download" in report
    assert (elsewhere / "demo-out" / "before_after.png").stat().st_size > 0
    assert (elsewhere / "demo-out" / "retouched.png").stat().st_size > 0
