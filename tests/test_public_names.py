"""The names users type keep working after the move into packages by concern: the everyday names from
`beauty_api` itself (loaded lazily), and the 0.1 module paths (with a DeprecationWarning)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import beauty_api
from beauty_api.moved_modules import MOVED

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(beauty_api._LAZY))
def test_every_everyday_name_comes_from_the_top(name: str) -> None:
    defined_in = importlib.import_module(f"beauty_api.{beauty_api._LAZY[name]}")
    assert getattr(beauty_api, name) is getattr(defined_in, name)
    assert name in beauty_api.__all__ and name in dir(beauty_api)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'ApiBackendd'"):
        beauty_api.ApiBackendd  # noqa: B018


@pytest.mark.parametrize("old", sorted(MOVED))
def test_the_old_module_paths_forward_to_the_new_ones(old: str) -> None:
    sys.modules.pop(f"beauty_api.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"beauty_api.{old} moved to"):
        module = importlib.import_module(f"beauty_api.{old}")
    for new in MOVED[old]:
        target = importlib.import_module(f"beauty_api.{new}")
        public = [n for n in vars(target) if not n.startswith("_")]
        assert public, new
        for name in public:
            assert getattr(module, name) is getattr(target, name) or any(
                hasattr(importlib.import_module(f"beauty_api.{other}"), name) for other in MOVED[old]
            )


def test_the_0_1_readme_example_imports() -> None:
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "from beauty_api import BeautyParams\n"
        "from beauty_api.backend import ApiBackend\n"
        "from beauty_api.batch import retouch_batch\n"
        "from beauty_api.codec import load_image_file, save_image\n"
        "from beauty_api.local.engine import LocalEngine\n"
        "import beauty_api.run.api_backend as new\n"
        "assert ApiBackend is new.ApiBackend\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_importing_the_package_loads_nothing_heavy() -> None:
    code = "import sys, json, beauty_api; print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    loaded = set(json.loads(done.stdout))
    assert not loaded & {"numpy", "requests", "torch", "PIL"}, loaded
