"""No exception that leaves beauty_api holds the API key anywhere in its graph.

Crash reporters record an exception's chain (`__cause__`, `__context__`), its attributes and
`args`, and the locals of every frame in its traceback. For each error path (bad key, refused
connection, timeout, 5xx, garbled JSON; submit and query) this walks all of that, the way such
a tool would, and looks for the key's text. Exception graphs are walked deeply (every attribute
of every object reachable from an exception); a frame's locals are walked into containers and
exceptions, and other objects count by their repr (what a crash reporter writes down).
"""

from __future__ import annotations

import socket
import types
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from beauty_api.api.client import ClientSettings, FaceBeautyClient
from beauty_api.api.retry_policy import RetrySettings
from beauty_api.errors import ApiError, BeautyError, ProtocolError, SubmitOutcomeUnknown, TransportError
from beauty_api.params import BeautyParams

KEY = "sk-LEAK-CHECK-0123456789abcdef"
QUICK = ClientSettings(
    timeout=10.0,
    connect_timeout=1.0,
    read_timeout=0.3,
    poll_initial=0.01,
    poll_max=0.02,
    retry=RetrySettings(max_attempts=2, base_delay=0.01, max_delay=0.02),
)
_OPAQUE = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def where_the_key_is(root: BaseException, secret: str = KEY) -> list[str]:
    """Every path from `root` to a text holding `secret` (empty when the graph is clean)."""
    found: list[str] = []
    seen: set[int] = set()

    def text_has(value: object) -> bool:
        if isinstance(value, str):
            return secret in value
        return secret.encode() in bytes(value)  # type: ignore[arg-type]

    def visit(obj: Any, path: str, deep: bool, depth: int) -> None:
        if isinstance(obj, str | bytes | bytearray | memoryview):
            if text_has(obj):
                found.append(path)
            return
        if obj is None or isinstance(obj, bool | int | float | complex) or depth > 25 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, BaseException):
            for name in ("__cause__", "__context__", "args"):
                visit(getattr(obj, name), f"{path}.{name}", True, depth + 1)
            for name, value in vars(obj).items():
                visit(value, f"{path}.{name}", True, depth + 1)
            visit(obj.__traceback__, f"{path}.__traceback__", False, depth + 1)
        elif isinstance(obj, types.TracebackType):
            tb: types.TracebackType | None = obj
            while tb is not None:
                frame = tb.tb_frame
                for name, value in frame.f_locals.items():
                    visit(value, f"{path}<{frame.f_code.co_name}>.{name}", False, depth + 1)
                tb = tb.tb_next
        elif isinstance(obj, Mapping):
            for key, value in list(obj.items()):
                visit(key, f"{path}[key]", deep, depth + 1)
                visit(value, f"{path}[{key!r}]", deep, depth + 1)
        elif isinstance(obj, list | tuple | set | frozenset):
            for index, value in enumerate(obj):
                visit(value, f"{path}[{index}]", deep, depth + 1)
        elif isinstance(obj, _OPAQUE):
            return
        elif deep:
            attributes = dict(getattr(obj, "__dict__", {}))
            for name in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, name):
                    attributes[name] = getattr(obj, name)
            for name, value in attributes.items():
                visit(value, f"{path}.{name}", True, depth + 1)
            if text_has(repr(obj)):
                found.append(f"repr({path})")
        elif text_has(repr(obj)):
            found.append(f"repr({path})")

    visit(root, "error", True, 0)
    return found


def test_the_walker_finds_a_key_hidden_in_a_cause_chain() -> None:
    """The check itself can fail: a requests-like exception with the key in its request headers."""

    class Request:
        def __init__(self) -> None:
            self.headers = {"ailabapi-api-key": KEY}

    inner = OSError("refused")
    inner.request = Request()  # type: ignore[attr-defined]
    outer = TransportError("could not reach the API")
    outer.__cause__ = inner
    assert where_the_key_is(outer) == ["error.__cause__.request.headers['ailabapi-api-key']"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _caught(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except BeautyError as error:
        return error
    raise AssertionError("no error was raised")


@pytest.fixture
def upload(sample_png_bytes: bytes) -> Any:
    return types.SimpleNamespace(data=sample_png_bytes, mime_type="image/png", filename="image.png")


SCENARIOS = {
    "bad key": (lambda emu: None, "submit", ApiError),
    "refused connection": (None, "submit", TransportError),
    "refused connection (query)": (None, "query", TransportError),
    "timeout": (lambda emu: emu.faults.slow("submit", 1, seconds=1.0), "submit", SubmitOutcomeUnknown),
    "timeout (query)": (lambda emu: emu.faults.slow("query", 2, seconds=1.0), "query", TransportError),
    "5xx": (lambda emu: emu.faults.server_errors("submit", 2, status=503), "submit", ApiError),
    "5xx (query)": (lambda emu: emu.faults.server_errors("query", 2, status=502), "query", ApiError),
    "garbled JSON": (lambda emu: emu.faults.malformed_json("submit", 1), "submit", SubmitOutcomeUnknown),
    "garbled JSON (query)": (lambda emu: emu.faults.malformed_json("query", 2), "query", ProtocolError),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_error_path_keeps_the_key_in_its_exception_graph(make_emulator, upload, scenario: str) -> None:
    arm, step, expected = SCENARIOS[scenario]
    if arm is None:
        base_url = f"http://127.0.0.1:{_closed_port()}"
    else:
        emu = make_emulator(api_key="the-right-key" if scenario == "bad key" else KEY)
        arm(emu)
        base_url = emu.base_url
    client = FaceBeautyClient(KEY, base_url, settings=QUICK)
    if step == "submit":
        error = _caught(lambda: client.submit(upload, BeautyParams()))
    else:
        error = _caught(lambda: client.query("task-1"))
    assert isinstance(error, expected), repr(error)
    assert where_the_key_is(error) == []
