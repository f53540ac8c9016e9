"""ApiBackend against the emulator on loopback: cache, journal/resume, sizes, alpha, progress, sync."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pipeline_helpers import FAST, make_backend, portraits, sample_portrait

from beauty_api.clock import FakeClock
from beauty_api.codec import SourceImage, decode_image
from beauty_api.errors import ConfigurationError, ImageError, RetouchCancelled, TaskFailedError
from beauty_api.ledger.storage_paths import state_dir
from beauty_api.params import BeautyParams
from beauty_api.run.api_backend import ApiBackend
from beauty_api.run.backend import RetouchOptions


@pytest.fixture
def state() -> Path:
    return state_dir()  # FACE_BEAUTY_STATE_DIR, a fresh tmp dir per test (conftest)


@pytest.fixture
def photo() -> SourceImage:
    return portraits(sample_portrait(), 1)[0]


def test_new_then_cached_pays_once(emulator, state, photo) -> None:
    backend = make_backend(emulator.base_url, state)
    first = backend.retouch(photo, BeautyParams(smoothing=90))
    second = backend.retouch(photo, BeautyParams(smoothing=90))
    assert (first.origin, first.credits_spent) == ("new", 15)
    assert (second.origin, second.credits_spent) == ("cached", 0)
    assert second.task_id == first.task_id
    np.testing.assert_array_equal(first.image, second.image)
    assert emulator.stats.tasks_created == 1
    assert first.image.shape == photo.rgb.shape and not np.array_equal(first.image, photo.rgb)


def test_different_settings_are_a_different_paid_request(emulator, state, photo) -> None:
    backend = make_backend(emulator.base_url, state)
    backend.retouch(photo, BeautyParams(filter_type="Sakura"))
    assert backend.retouch(photo, BeautyParams(filter_type="Paris")).origin == "new"
    assert emulator.stats.tasks_created == 2


def test_cache_survives_a_new_backend_like_a_restart(emulator, state, photo) -> None:
    make_backend(emulator.base_url, state).retouch(photo, BeautyParams())
    again = make_backend(emulator.base_url, state).retouch(photo, BeautyParams())
    assert again.origin == "cached" and emulator.stats.tasks_created == 1


@pytest.mark.parametrize("cache", [True, False])
def test_a_result_from_one_api_address_is_never_served_for_another(
    make_emulator, state, photo, cache
) -> None:
    # E.g. the emulator first, then the real API: neither the cache nor the journal may answer
    # the second address with the first one's result or task.
    first, second = make_emulator(), make_emulator()
    make_backend(first.base_url, state, cache=cache).retouch(photo, BeautyParams())
    other = make_backend(second.base_url, state, cache=cache).retouch(photo, BeautyParams())
    assert (other.origin, other.credits_spent) == ("new", 15)
    assert second.stats.tasks_created == 1
    # The same address spelled differently is the same address.
    again = make_backend(second.base_url.upper() + "/", state, cache=cache).retouch(photo, BeautyParams())
    assert again.origin == ("cached" if cache else "resumed")
    assert second.stats.tasks_created == 1


def test_with_the_cache_off_a_rerun_resumes_the_recorded_task_instead_of_paying(
    emulator, state, photo
) -> None:
    backend = make_backend(emulator.base_url, state, cache=False)
    backend.retouch(photo, BeautyParams())
    again = backend.retouch(photo, BeautyParams())
    assert (again.origin, again.credits_spent) == ("resumed", 0)
    assert emulator.stats.tasks_created == 1


def test_result_is_resized_back_to_the_input_size_unless_asked_to_keep_it(
    make_emulator, state, photo
) -> None:
    emulator = make_emulator(result_scale=0.5)
    backend = make_backend(emulator.base_url, state)
    height, width = photo.rgb.shape[:2]
    assert backend.retouch(photo, BeautyParams()).image.shape == (height, width, 3)
    kept = backend.retouch(photo, BeautyParams(), options=RetouchOptions(keep_returned_size=True))
    assert kept.image.shape == (height // 2, width // 2, 3)


def test_alpha_is_kept_for_the_output(emulator, state, photo) -> None:
    alpha = np.full(photo.rgb.shape[:2], 128, np.uint8)
    outcome = make_backend(emulator.base_url, state).retouch(SourceImage(photo.rgb, alpha), BeautyParams())
    assert outcome.image.shape[2] == 4
    np.testing.assert_array_equal(outcome.image[..., 3], alpha)
    assert emulator.stats.submit_log[0]["image_content_type"] == "image/png"


def test_sync_mode_returns_the_image_in_one_request(emulator, state, photo) -> None:
    outcome = make_backend(emulator.base_url, state).retouch(
        photo, BeautyParams(whitening=80), options=RetouchOptions(mode="sync")
    )
    assert outcome.origin == "new" and outcome.task_id is None
    assert emulator.stats.queries == 0 and emulator.stats.submit_log[0]["fields"]["task_type"] == "sync"


def test_progress_goes_through_the_stages_in_order(make_emulator, state, photo) -> None:
    # The emulator's time moves only once "processing" was reported, so the poll that sees it can
    # never be skipped by a slow scheduler (a wall-clock 0.1 s task was flaky on a busy machine).
    emulator_time = FakeClock()
    emulator = make_emulator(processing_seconds=5, time_source=emulator_time.monotonic)
    stages: list[str] = []

    def seen(progress) -> None:
        stages.append(progress.stage)
        if progress.stage == "processing":
            emulator_time.advance(5)

    make_backend(emulator.base_url, state).retouch(photo, BeautyParams(), on_progress=seen)
    assert stages[:2] == ["encoding", "submitting"]
    assert "processing" in stages and stages[-2:] == ["downloading", "done"]


def test_a_too_small_image_fails_before_any_request(emulator, state) -> None:
    with pytest.raises(ImageError, match="48"):
        make_backend(emulator.base_url, state).retouch(
            SourceImage(np.zeros((40, 400, 3), np.uint8)), BeautyParams()
        )
    assert emulator.stats.submits_received == 0


def test_a_failed_task_is_forgotten_so_the_next_run_submits_anew(emulator, state, photo) -> None:
    backend = make_backend(emulator.base_url, state)
    emulator.faults.fail_tasks(1)
    with pytest.raises(TaskFailedError, match="PROCESSING_FAILURE"):
        backend.retouch(photo, BeautyParams())
    assert backend.retouch(photo, BeautyParams()).origin == "new"
    assert emulator.stats.tasks_created == 2 and emulator.stats.credits_billed == 15


def test_cancel_keeps_the_task_for_a_resume(make_emulator, state, photo) -> None:
    emulator = make_emulator(processing_seconds=0.3)
    backend = make_backend(emulator.base_url, state)
    with pytest.raises(RetouchCancelled):
        backend.retouch(photo, BeautyParams(), check_cancel=lambda: emulator.stats.tasks_created == 1)
    again = backend.retouch(photo, BeautyParams())
    assert again.origin == "resumed" and emulator.stats.tasks_created == 1


def test_from_environment_needs_a_key_and_uses_the_state_dir(monkeypatch, emulator, state, photo) -> None:
    with pytest.raises(ConfigurationError, match="AILAB_API_KEY"):
        ApiBackend.from_environment()
    monkeypatch.setenv("AILAB_API_KEY", "emulator-key")
    monkeypatch.setenv("AILAB_API_BASE_URL", emulator.base_url)
    backend = ApiBackend.from_environment(settings=FAST)
    backend.retouch(photo, BeautyParams())
    assert (state / "journal.sqlite3").exists() and (state / "cache").is_dir()


def test_state_files_hold_no_key_and_are_private(monkeypatch, emulator, state, photo) -> None:
    monkeypatch.setenv("AILAB_API_KEY", "emulator-key")
    monkeypatch.setenv("AILAB_API_BASE_URL", emulator.base_url)
    ApiBackend.from_environment(settings=FAST).retouch(photo, BeautyParams())
    files = [p for p in state.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert b"emulator-key" not in path.read_bytes(), path
        if os.name == "posix":
            assert path.stat().st_mode & 0o077 == 0, path


def test_cached_bytes_are_the_downloaded_result(emulator, state, photo) -> None:
    backend = make_backend(emulator.base_url, state)
    outcome = backend.retouch(photo, BeautyParams(enlarge_eye=100))
    (entry,) = [backend.cache.get(key) for key in _cache_keys(backend)]
    np.testing.assert_array_equal(decode_image(entry.data), outcome.image)


def _cache_keys(backend) -> list[str]:
    import sqlite3

    with sqlite3.connect(backend.cache.directory / "index.sqlite3") as conn:
        return [row[0] for row in conn.execute("SELECT key FROM entries")]


def test_a_batch_cancelled_before_it_starts_encodes_and_sends_nothing(emulator, state, monkeypatch) -> None:
    import beauty_api.run.api_backend as backend_module
    from beauty_api.run.batch import retouch_batch

    encoded: list[int] = []
    real_encode = backend_module.encode_for_upload
    monkeypatch.setattr(
        backend_module, "encode_for_upload", lambda source: encoded.append(1) or real_encode(source)
    )
    images = portraits(sample_portrait(), 12)
    with pytest.raises(RetouchCancelled):
        retouch_batch(
            make_backend(emulator.base_url, state), images, BeautyParams(), check_cancel=lambda: True
        )
    assert encoded == [] and emulator.stats.submits_received == 0
