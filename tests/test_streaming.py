"""Flat memory in long batches: inputs read when their turn comes, pixels let go once encoded, a few
images decoded/encoded/written at once, results handed over and released.

Peak-memory figures live in benchmarks/bench_memory.py; these tests pin the mechanisms.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
import weakref

import numpy as np
import pytest
from PIL import Image
from pipeline_helpers import EMULATOR_KEY, FAST

from beauty_api.api.client import FaceBeautyClient
from beauty_api.codec import LazySources, SourceImage, image_file_size, lazy_batch, lazy_files
from beauty_api.errors import ImageError
from beauty_api.params import BeautyParams
from beauty_api.run.api_backend import ApiBackend
from beauty_api.run.backend import RetouchOutcome
from beauty_api.run.batch import RELEASED_IMAGE, retouch_batch
from beauty_api.run.concurrency import AdaptiveLimiter
from beauty_api.run.local_work import LocalWorkGate, default_permits


class CountingSources(LazySources):
    """Lazy sources that record when each item was made and how many made items are still alive."""

    def __init__(self, count: int, rgb: np.ndarray) -> None:
        self.loaded: list[int] = []
        self.alive: weakref.WeakSet[SourceImage] = weakref.WeakSet()
        self.peak_alive = 0
        self.lock = threading.Lock()
        super().__init__(count, self._make)
        self.rgb = rgb

    def _make(self, index: int) -> SourceImage:
        source = SourceImage(self.rgb.copy())
        with self.lock:
            self.loaded.append(index)
            self.alive.add(source)
            self.peak_alive = max(self.peak_alive, len(self.alive))
        return source


class LocalWorkBackend:
    """Like ApiBackend: image work under the batch's local-work gate, the remote part under a slot."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.working = 0
        self.peak_working = 0
        self.held_while_waiting = 0

    @contextlib.contextmanager
    def _work(self, limiter):
        with limiter.local_work.working():
            with self.lock:
                self.working += 1
                self.peak_working = max(self.peak_working, self.working)
            try:
                time.sleep(0.005)
                yield
            finally:
                with self.lock:
                    self.working -= 1

    def retouch(self, source, params, *, options, index=0, on_progress=None, check_cancel=None, limiter=None):
        with self._work(limiter):
            size = source.size
            del source
        with limiter.slot(check_cancel):
            if limiter.local_work.holding():
                self.held_while_waiting += 1
            time.sleep(self.delay)
        with self._work(limiter):
            image = np.full((size[1], size[0], 3), index % 256, dtype=np.uint8)
        return RetouchOutcome(image, "new", f"task-{index}", 0.0, 15)


def test_inputs_are_read_in_turn_and_few_are_alive_at_once(sample_rgb):
    sources = CountingSources(40, sample_rgb)
    backend = LocalWorkBackend()
    handed: dict[int, np.ndarray] = {}

    def on_item_done(index, outcome):
        handed[index] = outcome.image
        gc.collect()

    result = retouch_batch(
        backend, sources, BeautyParams(), concurrency=4, on_item_done=on_item_done, keep_images=False
    )

    assert sorted(sources.loaded) == list(range(40)) and len(sources.loaded) == 40  # each read once
    assert sources.peak_alive <= 8  # never more than the batch's threads (2 x concurrency)
    assert backend.peak_working <= default_permits(4)  # the gate: a few at a time
    assert backend.held_while_waiting == 0  # nobody waits for the API holding a permit
    assert all(outcome is not None and outcome.image is RELEASED_IMAGE for outcome in result.outcomes)
    assert all(int(handed[index][0, 0, 0]) == index for index in range(40))
    assert result.counts()["new"] == 40 and result.credits_spent == 600


def test_images_are_kept_by_default(sample_rgb):
    result = retouch_batch(LocalWorkBackend(), CountingSources(3, sample_rgb), BeautyParams(), concurrency=2)
    assert [int(outcome.image[0, 0, 0]) for outcome in result.outcomes] == [0, 1, 2]


def test_local_work_gate_bounds_the_threads_and_belongs_to_a_thread():
    gate = LocalWorkGate(2)
    inside, peak, lock = [0], [0], threading.Lock()

    def work():
        with gate.working():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.01)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 2
    gate.hold()
    gate.hold()  # already held by this thread: no second permit
    with gate.working():
        pass  # continues the held permit, then gives it back
    assert not gate.holding()
    limiter = AdaptiveLimiter(1, local_work=gate)
    gate.hold()
    with limiter.slot():
        assert not gate.holding()  # waiting for (and using) the API never holds a permit


def test_the_backend_lets_go_of_the_pixels_once_the_upload_is_encoded(emulator, tmp_path, sample_rgb):
    released_at_submit = []

    class Client(FaceBeautyClient):
        def submit(self, *args, **kwargs):
            gc.collect()
            released_at_submit.append(pixels() is None)
            return super().submit(*args, **kwargs)

    sources = [SourceImage(sample_rgb.copy())]
    pixels = weakref.ref(sources[0])
    backend = ApiBackend(Client(EMULATOR_KEY, emulator.base_url, settings=FAST))
    outcome = backend.retouch(sources.pop(), BeautyParams())  # only the backend holds it now
    assert released_at_submit == [True]
    assert outcome.image.shape == sample_rgb.shape


def test_lazy_files_read_headers_first_and_pixels_on_demand(tmp_path, sample_rgb):
    path = tmp_path / "a.png"
    Image.fromarray(sample_rgb).save(path)
    assert image_file_size(path) == (256, 256)
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(path.read_bytes()[:2000])  # the header survives, the pixels do not
    assert image_file_size(damaged) == (256, 256)
    sources = lazy_files([path, damaged])
    assert len(sources) == 2 and sources[0].size == (256, 256) and sources[-2].size == (256, 256)
    with pytest.raises(ImageError, match="damaged or truncated"):
        sources[1]
    with pytest.raises(IndexError):
        sources[2]
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageError, match="not a PNG, JPEG or WEBP"):
        image_file_size(tmp_path / "notes.png")


def test_lazy_batch_converts_one_item_at_a_time(sample_rgb):
    batch = np.stack([sample_rgb, sample_rgb[::-1]]).astype(np.float32) / 255.0
    sources = lazy_batch(batch)
    assert isinstance(sources, LazySources) and len(sources) == 2
    assert np.array_equal(sources[1].rgb, sample_rgb[::-1])
    assert len(lazy_batch(sample_rgb)) == 1  # not a batch: converted as before


def test_cli_a_file_damaged_past_its_header_fails_alone_before_its_request(emulator, tmp_path, sample_rgb):
    from test_cli import cli_env, run_cli, write_portraits

    good = write_portraits(tmp_path / "in", sample_rgb, ["a.png", "b.png"])
    damaged = tmp_path / "in" / "c.png"
    damaged.write_bytes(good[0].read_bytes()[:3000])

    done = run_cli(
        "retouch", *map(str, [*good, damaged]), "-o", str(tmp_path / "out"), env=cli_env(tmp_path, emulator)
    )

    assert done.returncode == 1, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert "image 3 (c.png)" in done.stderr and "damaged or truncated" in done.stderr
    assert emulator.stats.submits_received == 2  # nothing was sent for the damaged file
