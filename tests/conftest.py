"""Fixtures shared by every test file: isolation from the user's key and cache, the emulator, sample images.

Every test runs without AILAB_API_KEY / AILAB_API_BASE_URL / AILAB_CONFIG_FILE and with
FACE_BEAUTY_STATE_DIR pointing at its own temporary folder, so no test can spend real credits,
leak a real key or touch the user's journal and result cache.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import responses
from ledger_helpers import WallClock
from PIL import Image

from beauty_api.clock import FakeClock
from beauty_api.emulator import Emulator

SAMPLE_PORTRAIT = Path(__file__).resolve().parents[1] / "beauty_api" / "data" / "sample_portrait.png"
SAMPLE_SIZE = 256
EMULATOR_KEY = "emulator-key"


@pytest.fixture(autouse=True)
def _isolate_from_user_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real key, base URL, config file or shared ledger, and a private state folder, for every test."""
    for name in ("AILAB_API_KEY", "AILAB_API_BASE_URL", "AILAB_CONFIG_FILE", "FACE_BEAUTY_LEDGER_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)  # libpq's own settings of the developer's shell
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))  # never the developer's ~/.pgpass
    state_dir = tmp_path / "face_beauty_state"
    state_dir.mkdir()
    monkeypatch.setenv("FACE_BEAUTY_STATE_DIR", str(state_dir))
    # Emulators answer with the fast stand-in effect unless a test asks for the local engine.
    monkeypatch.setenv("FACE_BEAUTY_EMULATOR_EFFECT", "stand-in")


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A running emulator with zero queue/processing time; key `emulator-key`."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with any `Emulator(...)` keyword arguments; all are stopped after the test."""
    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        emu = Emulator(**kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def clock() -> FakeClock:
    """A FakeClock at 0: tests read sleeps and deadlines as plain seconds."""
    return FakeClock(start=0.0)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """`responses` for tests that pin exact requests; any unregistered request fails."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def fake_clock() -> FakeClock:
    """A FakeClock; pass `fake_clock.monotonic` as an emulator's `time_source` to step through time."""
    return FakeClock()


@pytest.fixture
def wall() -> WallClock:
    """A settable wall clock (tests/ledger_helpers.py) for a journal's or result cache's time_source."""
    return WallClock()


@cache
def _sample_rgb() -> np.ndarray:
    with Image.open(SAMPLE_PORTRAIT) as image:
        small = image.convert("RGB").reduce(image.width // SAMPLE_SIZE)
    rgb = np.asarray(small, dtype=np.uint8)
    rgb.setflags(write=False)
    return rgb


@cache
def _sample_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_sample_rgb(), "RGB").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def sample_rgb() -> np.ndarray:
    """The bundled portrait as a 256x256 uint8 RGB array (a fresh, writable copy per test)."""
    return _sample_rgb().copy()


@pytest.fixture
def sample_png_bytes() -> bytes:
    """`sample_rgb` encoded as PNG: a small valid upload with one frontal face."""
    return _sample_png()


# -- the shared ledger's PostgreSQL (tests/postgres_server.py) ----------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One throwaway PostgreSQL for the whole session, started on first use, stopped by pid at the end.

    Skipped with the reason when this machine has no PostgreSQL or no driver; `.ci/run` sets
    FACE_BEAUTY_REQUIRE_POSTGRES=1, and then a missing server fails the tests instead.
    """
    import postgres_server as pg

    reason = pg.unavailable_reason()
    if reason is not None:
        if os.environ.get(pg.REQUIRE_ENV):
            pytest.fail(f"{pg.REQUIRE_ENV} is set but {reason}")
        pytest.skip(reason)
    server = pg.PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """A fresh, empty database on the session's server: the value FACE_BEAUTY_LEDGER_URL would have."""
    _DATABASES[0] += 1
    return postgres_server.create_database(f"test_{os.getpid()}_{_DATABASES[0]}")


_DATABASES = [0]


@pytest.fixture(params=["sqlite", "postgresql"])
def both_ledgers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test on the local SQLite ledger and on a shared PostgreSQL one (FACE_BEAUTY_LEDGER_URL
    set to a fresh database, for this process and the worker processes it starts)."""
    if request.param == "postgresql":
        monkeypatch.setenv("FACE_BEAUTY_LEDGER_URL", request.getfixturevalue("postgres_url"))
    yield request.param
    if request.param == "postgresql":
        from beauty_api.ledger.ledger_choice import close_shared_stores

        close_shared_stores()
