"""What `retouch` says while it works: the live line, retry lines, shrunk uploads, messages."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from test_cli import cli_env, error_lines, run_cli, write_gray, write_portraits

from beauty_api.cli.live_status import format_duration
from beauty_api.cli.progress_report import BatchReporter
from beauty_api.clock import FakeClock
from beauty_api.errors import InvalidParameterError
from beauty_api.params import BeautyParams
from beauty_api.run.backend import RetouchOutcome
from beauty_api.run.progress_events import Progress, ResizeNotice, RetryNotice

CLEAR = "\r\x1b[K"


def outcome(credits: int) -> RetouchOutcome:
    return RetouchOutcome(np.zeros((8, 8, 3), np.uint8), "new" if credits else "cached", "t", 1.0, credits)


@pytest.fixture
def job(tmp_path: Path) -> SimpleNamespace:
    names = ["a.png", "b.png", "c.png", "d.png"]
    return SimpleNamespace(inputs=[Path(n) for n in names], outputs=[tmp_path / n for n in names])


def shown(stderr: str) -> str:
    """What the terminal shows last on the live line (after the last erase or newline)."""
    return re.split(r"\r\x1b\[K|\n", stderr)[-1]


def test_live_line_counts_done_in_flight_failed_credits_elapsed_and_eta(job, capsys) -> None:
    clock = FakeClock(start=0.0)
    reporter = BatchReporter(job, live=True, clock=clock, tick_seconds=None)
    reporter.start()
    assert shown(capsys.readouterr().err) == (
        "0/4 done, 0 in flight, 0 failed, 0 credits, 0.0 s elapsed, ETA after the first image"
    )
    for index in range(3):
        reporter.on_progress(Progress(index, "submitting", None, 0.0))
    clock.advance(12)
    reporter.on_item_done(0, outcome(15))
    reporter.on_item_done(1, None)
    err = capsys.readouterr().err
    assert "\n" not in err  # no per-image lines on a terminal: the live line says it all
    assert shown(err) == "1/4 done, 1 in flight, 1 failed, 15 credits, 12 s elapsed, ETA 12 s"
    assert (job.outputs[0]).exists()
    reporter.stop()
    assert capsys.readouterr().err == CLEAR  # erased: the summary line takes its place


def test_retry_and_resize_lines_appear_above_the_live_line(job, capsys) -> None:
    reporter = BatchReporter(job, live=True, clock=FakeClock(start=0.0), tick_seconds=None)
    reporter.start()
    capsys.readouterr()
    retry = RetryNotice(1, 5, "connection refused", 2.0, "submit")
    reporter.on_progress(Progress(0, "retrying", None, 0.5, retry=retry))
    resize = ResizeNotice((5000, 3000), (4095, 2457), scaled_back=True)
    reporter.on_progress(Progress(1, "resized", None, 0.1, resize=resize))
    err = capsys.readouterr().err
    lines = [part.split("\n")[0] for part in err.split(CLEAR) if "\n" in part]
    assert lines == [
        "[1/4] a.png: submit failed (connection refused), attempt 1 of 5; next try in 2.0 s",
        "[2/4] b.png: 5000x3000 is over the API's limits (4095 px a side, 2 MB): sent as 4095x2457, "
        "the result is scaled back to 5000x3000",
    ]
    assert shown(err).startswith("0/4 done")  # drawn again below them
    reporter.stop()


def test_line_mode_keeps_per_image_lines(job, capsys) -> None:
    reporter = BatchReporter(job, live=False, clock=FakeClock(start=0.0))
    reporter.start()
    reporter.on_progress(Progress(0, "submitting", None, 0.2))
    reporter.on_item_done(0, outcome(15))
    err = capsys.readouterr().err
    assert CLEAR not in err
    assert err.splitlines()[0] == "[1/4] a.png: submitting 0.2 s"
    assert err.splitlines()[1].startswith("[1/4] a.png: done (new, 1.0 s, 15 credits) -> ")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.04, "0.0 s"), (4.25, "4.2 s"), (12.4, "12 s"), (185, "3 min 05 s"), (3725, "1 h 02 min")],
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_a_piped_batch_prints_retries_shrunk_uploads_and_the_total_time(
    emulator, tmp_path, sample_rgb
) -> None:
    (portrait,) = write_portraits(tmp_path / "in", sample_rgb, ["portrait.png"])
    wide = tmp_path / "in" / "wide.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (60, 4200, 3), np.uint8)).save(wide)
    emulator.faults.rate_limit_submits(1, retry_after=0)

    done = run_cli(
        "retouch", str(portrait), str(wide), "-o", str(tmp_path / "out"), "--concurrency", "1",
        env=cli_env(tmp_path, emulator),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "[1/2] portrait.png: submit failed (rate limited, HTTP 429 " in done.stderr
    assert "), attempt 1 of 5; next try in 0.0 s" in done.stderr
    assert done.stderr.count("wide.png: 4200x60 is over the API's limits") == 1
    assert "sent as 4095x58, the result is scaled back to 4200x60" in done.stderr
    summary = done.stderr.splitlines()[-1]
    assert summary.startswith("summary: 2 image(s): 2 new") and summary.endswith(" in all")
    with Image.open(tmp_path / "out" / "wide.png") as image:
        assert image.size == (4200, 60)


def test_a_failure_names_its_vendor_code_once(emulator, tmp_path) -> None:
    gray = write_gray(tmp_path / "gray.png")
    done = run_cli("retouch", str(gray), "-o", str(tmp_path / "out.png"), env=cli_env(tmp_path, emulator))
    (line,) = error_lines(done.stderr)
    assert line.count("ERROR_NO_FACE_IN_FILE") == 1


def test_a_broken_config_file_is_reported_once(emulator, tmp_path, sample_rgb) -> None:
    (portrait,) = write_portraits(tmp_path / "in", sample_rgb, ["portrait.png"])
    env = cli_env(tmp_path, emulator, key=None)
    broken = tmp_path / "broken.ini"
    broken.write_text("[ailab\napi_key = x\n")
    broken.chmod(0o600)
    env["AILAB_CONFIG_FILE"] = str(broken)
    done = run_cli("retouch", str(portrait), "-o", str(tmp_path / "out.png"), env=env)
    assert done.returncode == 2
    assert [line for line in error_lines(done.stderr) if "not a valid INI file" in line] == [
        error_lines(done.stderr)[0]
    ]
    assert len(error_lines(done.stderr)) == 1


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [("Vintage", None), ("sakrua", "'Sakura'"), ("soft", "'Soft Light'"), ("newyork", "'New York'")],
)
def test_only_close_filter_names_are_suggested(typed: str, suggested: str | None) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        BeautyParams(filter_type=typed)
    text = str(caught.value)
    if suggested is None:
        assert "Did you mean" not in text
    else:
        assert f"Did you mean {suggested}?" in text


def test_a_local_text_file_is_not_called_an_error_page(tmp_path) -> None:
    text_file = tmp_path / "notes.png"
    text_file.write_text("hello, not an image\n")
    done = run_cli("retouch", str(text_file), "-o", str(tmp_path / "out.png"), env=cli_env(tmp_path))
    (line,) = error_lines(done.stderr)
    assert "(it is a text file)" in line and "error page" not in line
