"""Pipeline timings against the IN-PROCESS emulator: one image, batches, cache hits and resumes.

These are in-process figures (client and emulator share one interpreter, polling fitted to T);
what a user waits for is measured by benchmarks/bench_user_path.py (the CLI and the emulator as
separate processes, default settings), which is where the README's latency figures come from.

Run: `python benchmarks/bench_pipeline.py [--processing-seconds T] [--quick]`. Prints a table with
the goals and PASS/MISS; no pass/fail exit status.

Setup: the emulator runs in this process on loopback and takes T seconds (default 2) per task.
The real client, ApiBackend and retouch_batch run against it, with the task journal in a fresh
temporary state dir and the result cache off (except for the cache-hit row). Uploads are the
bundled 512x512 portrait, one pixel changed per image so that every request is a new one.

Polling: the client polls the emulator every T/20 (0.1 s for T=2; see fast_settings), so a
finished task is seen at most T/20 late and the time measured is the pipeline's, not the poll
interval's. The default schedule (learned from earlier tasks, poll_schedule.py) is measured too,
for one image: the median of 4 runs with one backend, so 3 of them have learned.

Goals (issues 2 and 4): one image within T + 0.5 s; a batch of 16 at concurrency 3 and 8 within
1.10 x ceil(N/c)*T; a cache hit makes no API call and a resume submits nothing (their cost is
reported as time per image).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from beauty_api.api.client import ClientSettings, FaceBeautyClient
from beauty_api.codec import SourceImage, decode_image, encode_for_upload, load_image_file
from beauty_api.emulator import Emulator
from beauty_api.emulator.effect import apply_effect, encode_result
from beauty_api.errors import RetouchCancelled
from beauty_api.ledger.storage_paths import open_journal, open_result_cache
from beauty_api.params import BeautyParams
from beauty_api.run.api_backend import ApiBackend
from beauty_api.run.backend import RetouchOptions
from beauty_api.run.batch import retouch_batch

SAMPLE = Path(__file__).resolve().parents[1] / "beauty_api" / "data" / "sample_portrait.png"
PARAMS = BeautyParams(smoothing=70, filter_type="Sakura")
ONE_IMAGE_SLACK = 0.5
BATCH_RATIO_GOAL = 1.10
DEFAULT_SETTINGS = ClientSettings()


@dataclass(frozen=True)
class Row:
    """One line of the result table."""

    case: str
    images: int
    concurrency: int
    measured: str
    ideal: str
    ratio: str
    goal: str
    verdict: str


def fast_settings(processing: float) -> ClientSettings:
    """Polling fitted to the emulator's T: every T/20, so a finished task waits at most T/20 to be seen.

    What the batch rows measure is what the pipeline adds (uploads, slots, downloads), not the
    polling grid; the "default polling" row shows the real schedule (1 s, x1.5, up to 5 s).
    """
    step = max(0.05, processing / 20)
    return ClientSettings(timeout=60 + 4 * processing, poll_initial=step, poll_max=step)


class Variants:
    """The sample portrait with pixel (0, 0) set to a counter: a new upload (and fingerprint) each time."""

    def __init__(self) -> None:
        self.base = load_image_file(SAMPLE).rgb
        self.count = 0

    def take(self, n: int) -> list[SourceImage]:
        images = []
        for _ in range(n):
            self.count += 1
            rgb = self.base.copy()
            rgb[0, 0] = (self.count & 255, (self.count >> 8) & 255, 7)
            images.append(SourceImage(rgb))
        return images


class InstrumentedClient(FaceBeautyClient):
    """The real client, plus: how long each submit took, and an event set once a submit has returned."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.submitted = threading.Event()
        self.submit_seconds: list[float] = []

    def submit(self, *args, **kwargs):
        start = time.perf_counter()
        receipt = super().submit(*args, **kwargs)
        self.submit_seconds.append(time.perf_counter() - start)  # list.append is atomic
        self.submitted.set()
        return receipt


@contextmanager
def state_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="face-beauty-bench-") as folder:
        yield Path(folder)


def backend_for(
    emulator: Emulator,
    state: Path,
    settings: ClientSettings,
    *,
    cache: bool = False,
    client_class: type[FaceBeautyClient] = InstrumentedClient,
) -> ApiBackend:
    """The real pipeline against the emulator: its key and address given explicitly, journal in `state`."""
    client = client_class(api_key=emulator.api_key, base_url=emulator.base_url, settings=settings)
    return ApiBackend(client, journal=open_journal(state), cache=open_result_cache(state, enabled=cache))


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# -- b1: one image --------------------------------------------------------------------------------


def one_image(emulator: Emulator, variants: Variants, settings: ClientSettings, runs: int) -> float:
    """Median wall time of `runs` single-image retouches, each a new paid task."""
    times = []
    with state_dir() as state:
        backend = backend_for(emulator, state, settings)
        for source in variants.take(runs):
            times.append(timed(lambda s=source: backend.retouch(s, PARAMS)))
    return statistics.median(times)


def bench_one_image(emulator: Emulator, variants: Variants, t: float, runs: int) -> list[Row]:
    fast = one_image(emulator, variants, fast_settings(t), runs)
    slow = one_image(emulator, variants, DEFAULT_SETTINGS, 4)
    goal = f"<= T+{ONE_IMAGE_SLACK:g} s"
    return [
        Row("b1 one image, emulator polling", 1, 1, f"{fast:.2f} s", f"{t:.2f} s", f"{fast / t:.2f}", goal,
            verdict(fast <= t + ONE_IMAGE_SLACK)),
        Row("b1 one image, default (learned) polling", 1, 1, f"{slow:.2f} s", f"{t:.2f} s", f"{slow / t:.2f}", "(info)", "-"),
    ]  # fmt: skip


# -- b2: batches ----------------------------------------------------------------------------------


def bench_batch(
    emulator: Emulator, variants: Variants, t: float, n: int, concurrency: int
) -> tuple[Row, str]:
    """Wall time of a batch, and a note on where an image's time went (submit under load, latency)."""
    sources = variants.take(n)
    with state_dir() as state:
        backend = backend_for(emulator, state, fast_settings(t))
        start = time.perf_counter()
        result = retouch_batch(backend, sources, PARAMS, concurrency=concurrency)
        wall = time.perf_counter() - start
    result.raise_for_failures()
    ideal = math.ceil(n / concurrency) * t
    ratio = wall / ideal
    submits = backend.client.submit_seconds
    latency = statistics.mean(outcome.seconds for outcome in result.outcomes)
    note = (
        f"  c={concurrency}: an image took {latency:.2f} s on average (T = {t:g} s); its submit "
        f"{statistics.mean(submits):.2f} s (max {max(submits):.2f} s) with up to {concurrency} uploads at once"
    )
    row = Row("b2 batch", n, concurrency, f"{wall:.2f} s", f"{ideal:.2f} s", f"{ratio:.3f}",
              f"< {BATCH_RATIO_GOAL:.2f}", verdict(ratio < BATCH_RATIO_GOAL))  # fmt: skip
    return row, note


# -- b3: cache hit and resume ---------------------------------------------------------------------


def api_calls(emulator: Emulator) -> tuple[int, int, int]:
    stats = emulator.stats.snapshot()
    return stats.submits_received, stats.queries, stats.downloads


def per_image(
    backend: ApiBackend, sources: Sequence[SourceImage], options: RetouchOptions
) -> tuple[float, set]:
    """Mean seconds per image, one image after the other, and the origins seen."""
    origins, times = set(), []
    for source in sources:
        start = time.perf_counter()
        outcome = backend.retouch(source, PARAMS, options=options)
        times.append(time.perf_counter() - start)
        origins.add(outcome.origin)
    return statistics.mean(times), origins


def bench_cache_hit(emulator: Emulator, variants: Variants, t: float, n: int) -> Row:
    sources = variants.take(n)
    with state_dir() as state:
        backend = backend_for(emulator, state, fast_settings(t), cache=True)
        retouch_batch(backend, sources, PARAMS, concurrency=min(n, 8)).raise_for_failures()
        before = api_calls(emulator)
        seconds, origins = per_image(backend, sources, RetouchOptions())
        no_calls = api_calls(emulator) == before and origins == {"cached"}
    return Row("b3 cache hit (per image)", n, 1, f"{seconds * 1000:.0f} ms", "-", "-", "no API call",
               verdict(no_calls))  # fmt: skip


def submit_then_cancel(backend: ApiBackend, source: SourceImage) -> None:
    """Submit for real, then cancel at the first check after the submit returned (as a Ctrl-C would)."""
    client = backend.client
    client.submitted.clear()
    try:
        backend.retouch(source, PARAMS, check_cancel=client.submitted.is_set)
    except RetouchCancelled:
        return
    raise RuntimeError("the retouch was not interrupted after its submit")


def bench_resume(emulator: Emulator, variants: Variants, t: float, n: int) -> Row:
    sources = variants.take(n)
    settings = fast_settings(t)
    with state_dir() as state:
        first = backend_for(emulator, state, settings)
        created = emulator.stats.tasks_created
        for source in sources:
            submit_then_cancel(first, source)
        while emulator.stats.tasks_completed < created + n:  # the tasks finish on the API side meanwhile
            time.sleep(0.05)
        rerun = backend_for(emulator, state, settings)
        seconds, origins = per_image(rerun, sources, RetouchOptions(use_cache=False))
        no_submit = emulator.stats.tasks_created == created + n and origins == {"resumed"}
    note = f"{seconds * 1000:.0f} ms"
    return Row("b3 resume of a finished task (per image)", n, 1, note, "-", "-",
               "no new submit", verdict(no_submit))  # fmt: skip


# -- where the time goes --------------------------------------------------------------------------


def median_ms(call: Callable[[], object], runs: int = 5) -> float:
    return statistics.median(timed(call) for _ in range(runs)) * 1000


def per_image_costs(emulator: Emulator, variants: Variants) -> list[str]:
    """Uncontended cost of each CPU step of one image, client side and emulator side (same 2 cores)."""
    source = variants.take(1)[0]
    upload = encode_for_upload(source)
    client = FaceBeautyClient(api_key=emulator.api_key, base_url=emulator.base_url, settings=fast_settings(1))
    processing, emulator.processing_seconds = emulator.processing_seconds, 0.0
    try:
        receipt = client.submit(upload, PARAMS)
        data = client.download(client.wait(receipt.task_id))
        sources = variants.take(5)
        submit = statistics.median(
            timed(lambda s=s: client.submit(encode_for_upload(s), PARAMS)) for s in sources
        )
    finally:
        emulator.processing_seconds = processing
    sliders = {name: getattr(PARAMS, name) for name in ("whitening", "smoothing", "thinface", "shrink_face",
                                                          "enlarge_eye", "remove_eyebrow")}  # fmt: skip
    render = median_ms(lambda: encode_result(apply_effect(source.rgb, sliders, PARAMS.filter_type)))
    encode = median_ms(lambda: encode_for_upload(source))
    return [
        f"  client: encode {encode:.0f} ms ({len(upload.data) / 1024:.0f} KiB PNG), "
        f"decode {median_ms(lambda: decode_image(data)):.0f} ms",
        f"  submit round trip {(submit * 1000) - encode:.0f} ms, of which the emulator's stand-in effect + PNG "
        f"encode {render:.0f} ms; the emulator starts its T clock only after this work, on the same cores",
    ]


# -- report ---------------------------------------------------------------------------------------

HEADER = Row("case", 0, 0, "measured", "ideal", "ratio", "goal", "result")


def table(rows: Sequence[Row]) -> str:
    cells = [
        [r.case, "N" if r is HEADER else str(r.images), "c" if r is HEADER else str(r.concurrency), r.measured,
         r.ideal, r.ratio, r.goal, r.verdict]
        for r in [HEADER, *rows]
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    left = {0, 6, 7}

    def line(row: list[str]) -> str:
        return "  ".join(
            v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options, run every case, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processing-seconds", type=float, default=None, metavar="T",
                        help="emulator processing time per task (default 2, or 0.5 with --quick)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="T=0.5 and fewer images: a smoke run")
    args = parser.parse_args(argv)
    t = args.processing_seconds if args.processing_seconds is not None else (0.5 if args.quick else 2.0)
    n_batch, runs, n_small = (8, 1, 3) if args.quick else (16, 3, 8)
    fast = fast_settings(t)
    print(
        f"Face Beauty Pro pipeline benchmark: in-process emulator, T = {t:g} s processing per task, "
        f"512x512 PNG uploads, journal on, cache off (except b3 cache hit)"
    )
    print(
        f"polling: emulator rows every {fast.poll_initial:g} s; default rows: the learned schedule "
        f"(poll_schedule.py, at most {DEFAULT_SETTINGS.poll_max:g} s apart)"
    )
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    print()
    variants = Variants()
    rows: list[Row] = []
    with Emulator(processing_seconds=t) as emulator:
        rows += bench_one_image(emulator, variants, t, runs)
        notes = []
        for concurrency in (3, 8):
            row, note = bench_batch(emulator, variants, t, n_batch, concurrency)
            rows.append(row)
            notes.append(note)
        rows.append(bench_cache_hit(emulator, variants, t, n_small))
        rows.append(bench_resume(emulator, variants, t, max(2, n_small // 2)))
        costs = per_image_costs(emulator, variants)
        billed = emulator.stats.snapshot().credits_billed
    print(table(rows))
    print()
    print("b2, where an image's time went:")
    print("\n".join(notes))
    print("per-image work on this machine (one image alone, median of 5):")
    print("\n".join(costs))
    print(
        f"emulator billed {billed} credits in all ({billed // 15} tasks); b1 is the median of {runs} run(s)."
    )
    print(
        "In-process figures: what the pipeline adds on top of T. What a user waits for (separate "
        "processes, default settings): benchmarks/bench_user_path.py."
    )


if __name__ == "__main__":
    main()
