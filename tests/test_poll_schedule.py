"""The poll schedule: few queries, placed around the moment a task is expected to finish.

Pure tests drive `query_times` / `expect` / `TaskTimer` with simulated tasks; the pipeline tests run
the real backend and client against the emulator with a FakeClock, so "T seconds" pass instantly
and every query the emulator answers is counted.
"""

from __future__ import annotations

from itertools import islice, pairwise, takewhile

import pytest

from beauty_api.api.client import ClientSettings, FaceBeautyClient
from beauty_api.api.poll_schedule import (
    MAX_INTERVAL,
    Expectation,
    Observation,
    TaskTimer,
    expect,
    fixed_times,
    query_times,
)
from beauty_api.api.task_timings import KEEP, TaskTimings
from beauty_api.clock import FakeClock
from beauty_api.codec import SourceImage
from beauty_api.errors import DeadlineExceeded
from beauty_api.params import BeautyParams
from beauty_api.run.api_backend import ApiBackend

API = "https://api.example"


def simulate(
    timings: TaskTimings, done_at: float, deadline: float = 300.0
) -> tuple[list[float], float | None]:
    """One task that is done `done_at` s after its submit: the times it is queried, when it is seen done.

    Learns like the backend does: expectation from `timings`, observation recorded when done.
    """
    timer = TaskTimer()
    asked = []
    for moment in query_times(expect(timings.recent(API))):
        if moment > deadline:
            return asked, None
        asked.append(moment)
        timer.saw(moment >= done_at, moment)
        if moment >= done_at:
            assert timer.observation is not None
            timings.record(API, timer.observation)
            return asked, moment
    raise AssertionError("the schedule ended")  # pragma: no cover - it is endless


# -- pure ---------------------------------------------------------------------------------------


def test_before_anything_is_known_lateness_is_a_fraction_of_the_task():
    for done_at in (1.0, 2.0, 5.0, 20.0):
        asked, seen = simulate(TaskTimings(), done_at)
        assert seen is not None and seen - done_at <= max(0.25, 0.25 * done_at) + 1e-9
        assert len(asked) <= 20


@pytest.mark.parametrize("processing", [1.0, 2.0, 5.0, 20.0])
def test_a_learned_time_is_met_with_few_queries_close_to_the_end(processing):
    timings = TaskTimings()
    for _ in range(3):  # a few tasks teach it
        simulate(timings, processing)
    for _ in range(5):
        asked, seen = simulate(timings, processing)
        assert seen is not None and 0 <= seen - processing <= 0.2 + 1e-6
        assert len(asked) <= 4
        near_the_end = [t for t in asked if t >= processing - 0.5]
        assert len(near_the_end) >= len(asked) - 1  # at most one look far from the end (the halfway look)


def test_the_queries_for_a_learned_time_are_placed_around_it():
    expectation = expect([Observation(1.9, 2.1)] * 3)
    assert expectation is not None
    assert (expectation.seconds, expectation.spread) == pytest.approx((2.0, 0.1))
    first = list(takewhile(lambda t: t < 2.4, query_times(expectation)))
    assert first == pytest.approx([1.7, 1.9, 2.1, 2.3])  # every 0.2 s from 0.3 s before the end


@pytest.mark.parametrize(("old", "new"), [(2.0, 5.0), (5.0, 2.0), (20.0, 1.0), (1.0, 20.0)])
def test_a_change_in_processing_time_is_learned_within_a_few_tasks(old, new):
    timings = TaskTimings()
    for _ in range(4):
        simulate(timings, old)
    late = []
    for _ in range(6):
        asked, seen = simulate(timings, new)
        assert seen is not None
        late.append((round(seen - new, 3), len(asked)))
    assert all(lateness <= 0.2 + 1e-6 and queries <= 4 for lateness, queries in late[4:]), late


def test_one_odd_task_does_not_move_the_expectation():
    steady = [Observation(1.9, 2.1)] * 2
    assert expect([Observation(9.0, 12.0), *steady]).seconds == pytest.approx(2.0)


def test_a_task_that_never_finishes_is_polled_until_the_deadline_at_most_5_s_apart():
    for expectation in (None, Expectation(2.0, 0.1), Expectation(20.0, 0.1)):
        times = list(takewhile(lambda t: t <= 300.0, query_times(expectation)))
        end = 0.0 if expectation is None else expectation.seconds
        gaps = [b - a for a, b in pairwise(times) if a >= end]
        assert times[-1] > 295.0 and max(gaps) <= MAX_INTERVAL + 1e-9
        assert len(times) <= 80  # backing off: no more than about one query per 5 s once past the end


def test_the_plain_schedule_is_still_available():
    assert list(islice(fixed_times(1.0, 1.5, 5.0), 6)) == [1.0, 2.5, 4.75, 8.125, 13.125, 18.125]
    assert list(islice(fixed_times(0.05, 1.0, 0.05), 3)) == pytest.approx([0.05, 0.1, 0.15])


def test_timer_brackets_the_finish():
    timer = TaskTimer()
    for moment, done in ((0.5, False), (1.7, False), (1.9, True), (2.1, True)):
        timer.saw(done, moment)
    assert timer.observation == Observation(1.7, 1.9)


# -- the stored history --------------------------------------------------------------------------


def test_timings_are_kept_per_address_across_processes_newest_first(tmp_path):
    path = tmp_path / "state" / "timings.sqlite3"
    first = TaskTimings(path)
    for seconds in range(KEEP + 5):
        first.record("HTTPS://API.Example:443/", Observation(seconds, seconds + 0.2))
    first.record("http://127.0.0.1:8765", Observation(0.9, 1.1))
    later = TaskTimings(path)  # another process
    recent = later.recent(API)
    assert len(recent) == KEEP and recent[0] == Observation(KEEP + 4, KEEP + 4.2)
    assert later.recent("http://127.0.0.1:8765/") == [Observation(0.9, 1.1)]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_an_unusable_timings_file_degrades_to_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    timings = TaskTimings(blocker / "timings.sqlite3")
    timings.record(API, Observation(1.0, 1.2))
    assert timings.recent(API) == [Observation(1.0, 1.2)]


# -- the real pipeline against the emulator, in fake time ----------------------------------------


def backend_in_fake_time(
    emulator, clock: FakeClock, timings: TaskTimings, timeout: float = 300.0
) -> ApiBackend:
    client = FaceBeautyClient(
        emulator.api_key, emulator.base_url, settings=ClientSettings(timeout=timeout), clock=clock
    )
    return ApiBackend(client, clock=clock, timings=timings)


def one_task(backend: ApiBackend, emulator, source: SourceImage) -> tuple[int, float, list]:
    """Queries made, fake seconds from the submit to the download, and the progress seen."""
    queries = emulator.stats.queries
    seen = []
    backend.retouch(source, BeautyParams(), on_progress=seen.append)
    submitted = next(p.elapsed for p in seen if p.stage == "queued")
    downloading = next(p.elapsed for p in seen if p.stage == "downloading")
    return emulator.stats.queries - queries, downloading - submitted, seen


def variants(rgb, count):
    out = []
    for number in range(count):
        varied = rgb.copy()
        varied[0, 0] = (number, 3, 5)
        out.append(SourceImage(varied))
    return out


def test_the_pipeline_learns_the_processing_time_and_says_what_it_expects(make_emulator, sample_rgb):
    clock = FakeClock(start=0.0)
    emulator = make_emulator(processing_seconds=2.0, time_source=clock.monotonic)
    timings = TaskTimings()
    backend = backend_in_fake_time(emulator, clock, timings)
    results = [one_task(backend, emulator, source) for source in variants(sample_rgb, 5)]

    _first_queries, first_wait, first_progress = results[0]
    assert all(p.expected is None for p in first_progress)  # nothing known yet
    assert first_wait <= 2.0 * 1.25
    for queries, wait, progress in results[2:]:
        assert queries <= 4 and 2.0 <= wait <= 2.2 + 1e-9
        expected = {p.expected for p in progress if p.stage in ("queued", "processing")}
        assert len(expected) == 1 and abs(expected.pop() - 2.0) <= 0.2
    assert len(timings.recent(emulator.base_url)) == 5


def test_the_pipeline_follows_a_change_of_processing_time(make_emulator, sample_rgb):
    clock = FakeClock(start=0.0)
    emulator = make_emulator(processing_seconds=1.0, time_source=clock.monotonic)
    backend = backend_in_fake_time(emulator, clock, TaskTimings())
    sources = variants(sample_rgb, 9)
    for source in sources[:3]:
        one_task(backend, emulator, source)
    emulator.processing_seconds = 5.0
    after = [one_task(backend, emulator, source)[:2] for source in sources[3:]]
    assert after[0][1] > 5.2  # the first slower task is seen late (the schedule was backing off) ...
    for queries, wait in after[3:]:  # ... within three tasks it looks at the right moment again
        assert queries <= 4 and 5.0 <= wait <= 5.2 + 1e-9


def test_a_task_that_never_finishes_is_polled_until_its_deadline(make_emulator, sample_rgb):
    clock = FakeClock(start=0.0)
    emulator = make_emulator(processing_seconds=10_000.0, time_source=clock.monotonic)
    timings = TaskTimings()
    for _ in range(3):
        timings.record(emulator.base_url, Observation(1.9, 2.1))  # it expects 2 s
    backend = backend_in_fake_time(emulator, clock, timings, timeout=60.0)
    seen = []
    with pytest.raises(DeadlineExceeded):
        backend.retouch(variants(sample_rgb, 1)[0], BeautyParams(), on_progress=seen.append)
    looks = [p.elapsed for p in seen if p.stage == "processing"]
    gaps = [b - a for a, b in pairwise(looks) if a >= 2.0]
    assert looks[-1] >= 55.0 and max(gaps) <= MAX_INTERVAL + 1e-9
    assert len(looks) == emulator.stats.queries <= 25
    assert len(timings.recent(emulator.base_url)) == 3  # an unfinished task teaches nothing


def test_a_slow_submit_answer_does_not_make_the_task_seen_late(make_emulator, sample_rgb):
    """The API's clock starts when the upload is in; a submit answer that takes long to arrive
    (a busy server rendering a wave of uploads, a busy client) must not push the looks back."""
    clock = FakeClock(start=0.0)
    emulator = make_emulator(processing_seconds=2.0, time_source=clock.monotonic)

    class SlowAnswerClient(FaceBeautyClient):
        answer_delay = 0.0

        def submit(self, *args, **kwargs):
            receipt = super().submit(*args, **kwargs)
            clock.advance(self.answer_delay)  # the answer arrives this much after the upload was in
            return receipt

    timings = TaskTimings()
    client = SlowAnswerClient(emulator.api_key, emulator.base_url, settings=ClientSettings(), clock=clock)
    backend = ApiBackend(client, clock=clock, timings=timings)
    sources = variants(sample_rgb, 5)
    for source in sources[:4]:
        one_task(backend, emulator, source)
    client.answer_delay = 1.5
    queries, wait_after_answer, _ = one_task(backend, emulator, sources[4])
    assert wait_after_answer <= 0.5 + 0.2 + 1e-6  # done 0.5 s after the answer, seen within 0.2 s
    assert queries <= 3
