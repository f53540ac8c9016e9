"""One way to do each thing (issue 7 item 12): one logger tree, one KEY_HEADER, one default timeout,
one range check per user setting, no dead code."""

from __future__ import annotations

import ast
import importlib
import logging
import pkgutil
from pathlib import Path

import pytest

import beauty_api
from beauty_api.api.client import ClientSettings
from beauty_api.errors import InvalidParameterError
from beauty_api.run.concurrency import check_concurrency
from beauty_api.timeouts import DEFAULT_TIMEOUT, check_timeout

REPO = Path(__file__).resolve().parents[1]
PACK_FILES = [
    *sorted((REPO / "beauty_api").rglob("*.py")),
    REPO / "nodes.py",
    *sorted((REPO / "face_beauty_nodes").glob("*.py")),
]


def _calls(path: Path, name: str) -> list[ast.Call]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name
    ]


def test_every_logger_is_named_after_its_module_under_beauty_api() -> None:
    names: dict[str, str] = {}
    for path in PACK_FILES:
        for call in _calls(path, "getLogger"):
            (arg,) = call.args
            names[str(path.relative_to(REPO))] = (
                arg.id if isinstance(arg, ast.Name) else ast.literal_eval(arg)
            )
    assert names, "no logger found"
    for where, name in names.items():
        if where == "beauty_api/cli/output.py":  # configures the whole tree's handler for -v
            assert name == "beauty_api", where
        elif where.startswith("beauty_api/"):
            assert name == "__name__", where
        else:  # the ComfyUI side (imported under a folder-path name) joins the same tree
            assert name == f"beauty_api.nodes.{Path(where).stem}", where
    for module in pkgutil.walk_packages(beauty_api.__path__, "beauty_api."):
        if module.name.endswith("__main__"):
            continue
        loaded = importlib.import_module(module.name)
        log = getattr(loaded, "log", None)
        if isinstance(log, logging.Logger):
            assert log.name == module.name


def test_the_key_header_is_defined_once() -> None:
    definitions = [
        str(path.relative_to(REPO))
        for path in PACK_FILES
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "KEY_HEADER" for t in node.targets)
    ]
    assert definitions == ["beauty_api/api/protocol.py"]


def test_one_default_timeout_and_one_range_check_for_timeout_and_concurrency() -> None:
    from beauty_api.cli.parser import build_parser

    assert ClientSettings().timeout == DEFAULT_TIMEOUT
    retouch = build_parser().parse_args(["retouch", "in.png", "-o", "out.png"])
    assert float(retouch.timeout) == DEFAULT_TIMEOUT
    assert check_timeout(10) == 10.0 and check_timeout(3600) == 3600.0
    for bad in (9.9, 3601, 0, float("nan"), "300"):
        with pytest.raises(InvalidParameterError):
            check_timeout(bad)
    assert check_concurrency(16) == 16
    for bad in (0, 17, True, 2.0):
        with pytest.raises(InvalidParameterError):
            check_concurrency(bad)
    # The places that used to carry their own copy of the default (and their own range checks).
    copies = [REPO / "nodes.py", REPO / "beauty_api/cli/parser.py", REPO / "beauty_api/cli/retouch_job.py"]
    literal_300 = [
        str(path.relative_to(REPO))
        for path in copies
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value in (300, 300.0, "300")
    ]
    assert literal_300 == []
    assert {"check_timeout", "check_concurrency"} <= _names(copies[0])
    assert {"check_timeout", "check_concurrency"} <= _names(copies[2])


def _names(path: Path) -> set[str]:
    return {
        node.id
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Name)
    }


def test_dead_code_is_gone() -> None:
    import beauty_api.ledger.journal as journal
    import beauty_api.run.concurrency as concurrency

    assert not hasattr(concurrency, "LimitChange") and not hasattr(concurrency.AdaptiveLimiter, "changes")
    assert not hasattr(journal, "STATES")
