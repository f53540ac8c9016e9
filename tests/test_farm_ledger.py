"""Workers of a farm share one ledger on PostgreSQL: the CLI as users run it, on two "machines".

Two state folders stand for two machines (each would have its own SQLite ledger); the URL makes
them share the journal and the cache. The emulator counts what was paid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_cli import cli_env, run_cli, write_portraits

SECRET = "pw-Never-Shown-42"


def farm_env(tmp_path: Path, emulator: Any, url: str | None, machine: str) -> dict[str, str]:
    (tmp_path / machine).mkdir(exist_ok=True)
    env = cli_env(tmp_path / machine, emulator)
    if url is not None:
        env["FACE_BEAUTY_LEDGER_URL"] = url
    return env


def test_an_image_retouched_on_two_machines_is_paid_once(
    tmp_path: Path, emulator: Any, postgres_url: str, sample_rgb: np.ndarray
) -> None:
    (image,) = write_portraits(tmp_path / "shared-folder", sample_rgb, ["portrait.png"])
    first = run_cli(
        "retouch",
        str(image),
        "-o",
        str(tmp_path / "a.png"),
        env=farm_env(tmp_path, emulator, postgres_url, "m1"),
    )
    assert first.returncode == 0, first.stderr
    second = run_cli(
        "retouch",
        str(image),
        "-o",
        str(tmp_path / "b.png"),
        env=farm_env(tmp_path, emulator, postgres_url, "m2"),
    )
    assert second.returncode == 0, second.stderr
    assert emulator.stats.paid_submits == 1  # the second machine reused the first one's result
    assert (tmp_path / "b.png").read_bytes() == (tmp_path / "a.png").read_bytes()

    listed = run_cli("journal", "list", env=farm_env(tmp_path, emulator, postgres_url, "m2"))
    assert listed.returncode == 0, listed.stderr
    assert f"journal: {postgres_url} (1 task(s))" in listed.stdout
    info = run_cli("cache", "info", env=farm_env(tmp_path, emulator, postgres_url, "m1"))
    assert f"database: {postgres_url}" in info.stdout and "entries: 1" in info.stdout


def test_without_the_url_each_machine_keeps_its_own_ledger(
    tmp_path: Path, emulator: Any, sample_rgb: np.ndarray
) -> None:
    (image,) = write_portraits(tmp_path / "shared-folder", sample_rgb, ["portrait.png"])
    for machine in ("m1", "m2"):
        done = run_cli(
            "retouch",
            str(image),
            "-o",
            str(tmp_path / f"{machine}.png"),
            env=farm_env(tmp_path, emulator, None, machine),
        )
        assert done.returncode == 0, done.stderr
    assert emulator.stats.paid_submits == 2  # what the shared ledger is for
    assert (tmp_path / "m1" / "state" / "journal.sqlite3").is_file()


def test_an_unreachable_ledger_is_waited_for_within_the_deadline_then_fails_closed(
    emulator: Any, sample_rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    import postgres_server as pg
    from pipeline_helpers import EMULATOR_KEY, FAST

    from beauty_api.api.client import FaceBeautyClient
    from beauty_api.clock import FakeClock
    from beauty_api.codec import SourceImage
    from beauty_api.ledger.postgres_cache import PostgresResultCache
    from beauty_api.ledger.postgres_journal import PostgresJournal
    from beauty_api.ledger.postgres_store import PostgresStore, SharedLedgerUnavailable
    from beauty_api.params import BeautyParams
    from beauty_api.run.api_backend import ApiBackend

    monkeypatch.setenv("PGPASSWORD", SECRET)
    clock = FakeClock(start=0.0)
    store = PostgresStore(f"postgresql://farm@127.0.0.1:{pg.free_port()}/ledger", clock=clock)
    client = FaceBeautyClient(EMULATOR_KEY, emulator.base_url, settings=FAST, clock=clock)
    backend = ApiBackend(client, journal=PostgresJournal(store), cache=PostgresResultCache(store))
    with pytest.raises(SharedLedgerUnavailable) as caught:
        backend.retouch(SourceImage(sample_rgb), BeautyParams())
    assert emulator.stats.submits_received == 0  # never submitted unprotected
    assert (
        FAST.timeout <= clock.monotonic() < FAST.timeout + 3
    )  # it waited for the server, up to the deadline
    text = str(caught.value)
    assert "could not claim an image" in text and "nothing was submitted" in text
    assert "\n" not in text and SECRET not in text
    backend.close()


def test_a_url_with_a_password_or_a_missing_driver_stops_before_anything_is_paid(
    tmp_path: Path, emulator: Any, sample_rgb: np.ndarray
) -> None:
    (image,) = write_portraits(tmp_path / "in", sample_rgb, ["portrait.png"])
    env = farm_env(tmp_path, emulator, f"postgresql://farm:{SECRET}@db.lan/ledger", "m1")
    done = run_cli("retouch", str(image), "-o", str(tmp_path / "out.png"), env=env)
    assert done.returncode != 0 and emulator.stats.submits_received == 0
    assert "PGPASSWORD" in done.stderr and SECRET not in done.stderr


@pytest.fixture(autouse=True)
def _needs_postgres_for_the_shared_tests(request: pytest.FixtureRequest) -> None:
    """Every test here but the SQLite one needs the driver (the fixture skips or fails as for all)."""
    if "without_the_url" not in request.node.name and "postgres_url" not in request.fixturenames:
        request.getfixturevalue("postgres_server")


def test_the_url_chooses_the_ledger_and_a_process_keeps_one_pool_per_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    from beauty_api.ledger.journal import TaskJournal
    from beauty_api.ledger.ledger_choice import close_shared_stores, open_ledger
    from beauty_api.ledger.postgres_journal import PostgresJournal
    from beauty_api.ledger.result_cache import NullCache

    local = open_ledger(tmp_path / "state")
    assert isinstance(local.journal, TaskJournal) and not local.shared  # unset: nothing changes

    config = tmp_path / "config.ini"
    config.write_text(f"[ailabtools]\nledger_url = {postgres_url}\n")
    config.chmod(0o600)
    monkeypatch.setenv("AILAB_CONFIG_FILE", str(config))
    first = open_ledger(tmp_path / "state")
    second = open_ledger(tmp_path / "other", use_cache=False)
    assert isinstance(first.journal, PostgresJournal) and first.shared
    assert first.location == postgres_url
    assert isinstance(second.journal, PostgresJournal) and isinstance(second.cache, NullCache)
    assert first.journal.store is second.journal.store  # one connection pool per process and URL
    assert not (tmp_path / "other" / "journal.sqlite3").exists()  # no SQLite file beside a shared ledger
    close_shared_stores()


def test_a_worker_killed_with_its_request_on_the_wire_is_never_paid_for_again_silently(
    emulator: Any, sample_rgb: np.ndarray, postgres_url: str
) -> None:
    import subprocess
    import sys

    from pipeline_helpers import EMULATOR_KEY, FAST

    from beauty_api.api.client import FaceBeautyClient
    from beauty_api.codec import SourceImage
    from beauty_api.errors import SubmitOutcomeUnknown
    from beauty_api.ledger.fingerprint import pixel_digest, request_fingerprint
    from beauty_api.ledger.postgres_cache import PostgresResultCache
    from beauty_api.ledger.postgres_journal import PostgresJournal
    from beauty_api.ledger.postgres_store import PostgresStore
    from beauty_api.params import BeautyParams
    from beauty_api.run.api_backend import ApiBackend

    client = FaceBeautyClient(EMULATOR_KEY, emulator.base_url, settings=FAST)
    fields = client.form_fields(BeautyParams(), "async")
    fingerprint = request_fingerprint(
        client.ENDPOINT, "async", fields, pixel_digest(SourceImage(sample_rgb)), base_url=client.base_url
    )
    store = PostgresStore(postgres_url)
    journal = PostgresJournal(store)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    killed = f"{__import__('socket').gethostname()}:{int(dead.stdout)}:x"
    journal.claim(fingerprint, killed)
    journal.mark_sending(fingerprint, killed)  # ... and then it was killed: was its request paid?

    backend = ApiBackend(client, journal=journal, cache=PostgresResultCache(store))
    with pytest.raises(SubmitOutcomeUnknown, match=f"journal forget {fingerprint[:16]}"):
        backend.retouch(SourceImage(sample_rgb), BeautyParams())
    assert emulator.stats.submits_received == 0  # nobody pays again on a guess
    assert journal.forget_matching(fingerprint[:16]) == 1  # the person decides
    assert backend.retouch(SourceImage(sample_rgb), BeautyParams()).origin == "new"
    assert emulator.stats.paid_submits == 1
    backend.close()
    store.close()
