"""The command line, run as the user runs it: `python -m beauty_api ...` in a subprocess, against the emulator.

Each subprocess gets a private state dir, an empty private config file (so a developer's real
config can never be read) and, where the command needs the API, the emulator's address and key.
The emulator's counters prove what reached it: nothing at all for a usage or config error, no
new task on a re-run. Argument handling that needs no subprocess is tested through `main([...])`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from beauty_api.cli import main
from beauty_api.cli.output_paths import plan_outputs
from beauty_api.params import FILTER_NAMES

REPO_ROOT = Path(__file__).resolve().parents[1]
EMULATOR_KEY = "emulator-key"


def cli_env(tmp_path: Path, emulator=None, *, key: str | None = EMULATOR_KEY) -> dict[str, str]:
    """The environment of one CLI run: no inherited AILAB_/FACE_BEAUTY_ settings, a private state dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AILAB_", "FACE_BEAUTY_"))}
    config = tmp_path / "empty_config.ini"
    if not config.exists():
        config.write_text("")
        config.chmod(0o600)
    env["AILAB_CONFIG_FILE"] = str(config)
    env["FACE_BEAUTY_STATE_DIR"] = str(tmp_path / "state")
    env["NO_PROXY"] = ",".join(filter(None, [env.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    if emulator is not None:
        env["AILAB_API_BASE_URL"] = emulator.base_url
    if key is not None:
        env["AILAB_API_KEY"] = key
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    if args and args[0] == "retouch":  # poll the emulator quickly: no test waits a real second
        args = ("retouch", "--poll", "0.05", *args[1:])
    return subprocess.run(
        [sys.executable, "-m", "beauty_api", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def empty_config(tmp_path, monkeypatch) -> Path:
    """In-process runs read an empty private config file, never a developer's real one."""
    config = tmp_path / "empty_config.ini"
    config.write_text("")
    config.chmod(0o600)
    monkeypatch.setenv("AILAB_CONFIG_FILE", str(config))
    return config


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def write_portraits(folder: Path, rgb: np.ndarray, names: list[str]) -> list[Path]:
    """The sample portrait under each name, one pixel changed per file so every request differs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, name in enumerate(names):
        varied = rgb.copy()
        varied[0, 0] = (number * 37) % 256
        path = folder / name
        Image.fromarray(varied).save(path)
        paths.append(path)
    return paths


def write_gray(path: Path) -> Path:
    Image.new("RGB", (128, 128), (128, 128, 128)).save(path)
    return path


# -- retouch ------------------------------------------------------------------------------------


def test_retouch_one_file_writes_a_changed_image_and_never_logs_the_key(emulator, tmp_path, sample_rgb):
    (source,) = write_portraits(tmp_path / "in", sample_rgb, ["portrait.png"])
    target = tmp_path / "out" / "portrait-retouched.jpg"

    done = run_cli(
        "-v", "retouch", str(source), "-o", str(target), "--filter", "sakura", env=cli_env(tmp_path, emulator)
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(target)
    with Image.open(target) as image:
        assert image.format == "JPEG"
        result = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert result.shape == sample_rgb.shape
    assert np.abs(result - sample_rgb).mean() > 2
    assert "1 new, 0 cached, 0 resumed, 0 failed; 15 credits spent" in done.stderr
    assert "DEBUG" in done.stderr  # -v really logs
    assert EMULATOR_KEY not in done.stderr + done.stdout
    stats = emulator.stats.snapshot()
    assert stats.tasks_created == 1
    assert stats.submit_log[0]["fields"]["filter_type"] == "10"


def test_retouch_several_files_fills_a_new_folder_with_the_same_stems_in_order(
    emulator, tmp_path, sample_rgb
):
    sources = write_portraits(tmp_path / "in", sample_rgb, ["zeta.png", "alpha.jpg", "mid.png"])
    folder = tmp_path / "new" / "results"

    done = run_cli("retouch", *map(str, sources), "-o", str(folder), env=cli_env(tmp_path, emulator))

    assert done.returncode == 0, done.stderr
    expected = [folder / "zeta.png", folder / "alpha.png", folder / "mid.png"]
    assert done.stdout.split() == [str(path) for path in expected]
    assert all(path.is_file() for path in expected)
    assert "[2/3] alpha.jpg:" in done.stderr  # progress names the image and its place
    assert emulator.stats.tasks_created == 3


def test_a_failing_image_is_reported_the_others_are_written_and_a_rerun_pays_nothing(
    emulator, tmp_path, sample_rgb
):
    good = write_portraits(tmp_path / "in", sample_rgb, ["first.png", "third.png"])
    gray = write_gray(tmp_path / "in" / "gray.png")
    folder = tmp_path / "out"
    args = ["retouch", str(good[0]), str(gray), str(good[1]), "-o", str(folder)]
    env = cli_env(tmp_path, emulator)

    first = run_cli(*args, env=env)

    assert first.returncode == 1
    (line,) = error_lines(first.stderr)
    assert "image 2 (gray.png)" in line and "ERROR_NO_FACE_IN_FILE" in line
    assert (folder / "first.png").is_file() and (folder / "third.png").is_file()
    assert not (folder / "gray.png").exists()
    assert "2 new, 0 cached, 0 resumed, 1 failed; 30 credits spent" in first.stderr
    before = emulator.stats.snapshot()

    again = run_cli(*args, env=env)

    assert again.returncode == 1
    assert "0 new, 2 cached, 0 resumed, 1 failed; 0 credits spent" in again.stderr
    after = emulator.stats.snapshot()
    assert (after.tasks_created, after.credits_billed) == (before.tasks_created, before.credits_billed)


def test_a_refused_key_stops_the_batch_and_is_said_once(emulator, tmp_path, sample_rgb):
    sources = write_portraits(tmp_path / "in", sample_rgb, [f"p{n}.png" for n in range(8)])

    done = run_cli(
        "retouch",
        *map(str, sources),
        "-o",
        str(tmp_path / "out"),
        "--concurrency",
        "1",
        env=cli_env(tmp_path, emulator, key="not-the-emulator-key"),
    )

    assert done.returncode == 1
    (line,) = error_lines(done.stderr)
    assert "ERROR_USER_NOT_EXISTS" in line and "AILAB_API_KEY" in line
    assert sum("ERROR_USER_NOT_EXISTS" in text for text in done.stderr.splitlines()) == 1
    assert "not sent: images " in done.stderr and "nothing was paid" in done.stderr
    assert "1 failed, 7 not sent; 0 credits spent" in done.stderr
    assert emulator.stats.submits_received == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [("--enlarge-eye", "101"), ("--filter", "sakkura")],
)
def test_a_bad_setting_exits_2_with_one_line_naming_it_and_sends_nothing(
    emulator, tmp_path, sample_rgb, option, value
):
    (source,) = write_portraits(tmp_path / "in", sample_rgb, ["a.png"])

    done = run_cli(
        "retouch",
        str(source),
        "-o",
        str(tmp_path / "a.png.out.png"),
        option,
        value,
        env=cli_env(tmp_path, emulator),
    )

    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith(f"error: {option}:")
    assert emulator.stats.submits_received == 0
    assert not (tmp_path / "state").exists()  # not even the journal was opened


def test_a_missing_key_exits_2_with_instructions_and_sends_nothing(emulator, tmp_path, sample_rgb):
    (source,) = write_portraits(tmp_path / "in", sample_rgb, ["a.png"])

    done = run_cli(
        "retouch", str(source), "-o", str(tmp_path / "out.png"), env=cli_env(tmp_path, emulator, key=None)
    )

    assert done.returncode == 2
    assert done.stderr.startswith("error: No AILabTools API key is set")
    assert "AILAB_API_KEY=<your key>" in done.stderr and "api_key = <your key>" in done.stderr
    assert emulator.stats.submits_received == 0
    assert not (tmp_path / "out.png").exists()


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_exits_130_and_a_rerun_resumes_the_paid_task(make_emulator, tmp_path, sample_rgb):
    emulator = make_emulator(processing_seconds=1.2)
    (source,) = write_portraits(tmp_path / "in", sample_rgb, ["a.png"])
    args = ["retouch", str(source), "-o", str(tmp_path / "out.png")]
    env = cli_env(tmp_path, emulator)
    process = subprocess.Popen(
        [sys.executable, "-m", "beauty_api", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while emulator.stats.tasks_created == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # the answer reaches the client and the task id is recorded
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()

    assert process.returncode == 130, stderr
    assert "1 image(s) were in flight" in stderr and "resumes it without paying again" in stderr
    again = run_cli(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert "0 new, 0 cached, 1 resumed, 0 failed; 0 credits spent" in again.stderr
    assert emulator.stats.tasks_created == 1


# -- other commands -------------------------------------------------------------------------------


def test_filters_lists_none_and_the_35_filters(tmp_path):
    done = run_cli("filters", env=cli_env(tmp_path, key=None))

    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert len(lines) == 36
    assert lines[0].split() == ["0", "none"]
    assert lines[10].strip() == "10  Sakura"
    assert [line.split(None, 1)[1] for line in lines[1:]] == list(FILTER_NAMES)


def test_demo_runs_offline_without_any_key_and_writes_both_images(tmp_path):
    env = cli_env(tmp_path, key=None)
    env["AILAB_API_BASE_URL"] = "http://127.0.0.1:9"  # nothing listens: the demo must not use it
    env["AILAB_CONFIG_FILE"] = str(tmp_path / "missing.ini")  # reading it would be an error
    out = tmp_path / "demo"

    done = run_cli("demo", "-o", str(out), env=env)

    assert done.returncode == 0, done.stderr
    for stage in ("encode", "submit", "wait", "download", "decode", "total"):
        assert any(line.startswith(stage) and " ms" in line for line in done.stdout.splitlines()), stage
    assert str(out / "before_after.png") in done.stdout
    with Image.open(out / "retouched.png") as retouched, Image.open(out / "before_after.png") as both:
        assert retouched.size == (512, 512)
        assert both.width == 1024 and both.height > 512
    assert not (tmp_path / "state").exists()  # the user's state is never touched


def test_cache_info_and_clear(emulator, tmp_path, sample_rgb, monkeypatch, capsys):
    (source,) = write_portraits(tmp_path / "in", sample_rgb, ["a.png"])
    env = cli_env(tmp_path, emulator)
    for name in ("AILAB_API_KEY", "AILAB_API_BASE_URL", "FACE_BEAUTY_STATE_DIR", "AILAB_CONFIG_FILE"):
        monkeypatch.setenv(name, env[name])
    assert main(["retouch", str(source), "-o", str(tmp_path / "a.png.out.png"), "--sync"]) == 0
    capsys.readouterr()

    info = run_cli("cache", "info", env=env)
    cleared = run_cli("cache", "clear", env=env)
    empty = run_cli("cache", "info", env=env)

    assert info.returncode == cleared.returncode == empty.returncode == 0
    assert f"directory: {tmp_path / 'state' / 'cache'}" in info.stdout
    assert "entries: 1" in info.stdout and "KiB" in info.stdout
    assert cleared.stdout.startswith("removed 1 cached result(s)")
    assert "entries: 0" in empty.stdout


# -- in-process: argument handling ----------------------------------------------------------------


def test_version_and_no_command(capsys):
    assert main(["--version"]) == 0
    assert "0.1.0" in capsys.readouterr().out
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_usage_errors_are_one_line(capsys):
    assert main(["retouch", "a.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-o/--output" in err
    assert main(["cache"]) == 2
    assert main(["retouch", "-o", "x.png", "a.png", "--bogus"]) == 2


def test_every_bad_option_is_reported_before_anything_else(tmp_path, capsys, empty_config):
    bad = [
        "--shrink-face",
        "-1",
        "--filter",
        "99",
        "--smoothing",
        "4.5",
        "--timeout",
        "never",
        "--poll",
        "-1",
        "--concurrency",
        "0",
    ]
    done = main(["retouch", str(tmp_path / "missing.png"), "-o", "x.png", *bad])

    assert done == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].strip() for line in lines[:6]] == [
        "--smoothing",
        "--shrink-face",
        "--filter",
        "--timeout",
        "--poll",
        "--concurrency",
    ]
    assert lines[6] == f"error: input 1 ({tmp_path / 'missing.png'}): no such file."
    assert lines[7].startswith("error: No AILabTools API key is set")  # conftest removed the key


def test_inputs_that_are_tiny_or_not_images_are_refused(tmp_path, capsys, monkeypatch, empty_config):
    monkeypatch.setenv("AILAB_API_KEY", "k")
    Image.new("RGB", (40, 60), (9, 9, 9)).save(tmp_path / "tiny.png")
    (tmp_path / "notes.png").write_text("hello")

    assert (
        main(["retouch", str(tmp_path / "tiny.png"), str(tmp_path / "notes.png"), "-o", str(tmp_path)]) == 2
    )

    lines = capsys.readouterr().err.splitlines()
    assert "input 1" in lines[0] and "40 x 60 px is too small" in lines[0]
    assert "input 2" in lines[1] and "not a PNG, JPEG or WEBP image" in lines[1]


def test_output_planning(tmp_path):
    a, b = tmp_path / "x" / "a.png", tmp_path / "y" / "a.jpg"
    c = tmp_path / "c.jpeg"

    outputs, folder, problems = plan_outputs([c], str(tmp_path / "res.webp"))
    assert (outputs, folder, problems) == ([tmp_path / "res.webp"], tmp_path, [])
    outputs, folder, problems = plan_outputs([c], str(tmp_path / "results"))  # no suffix: a folder
    assert (outputs, folder, problems) == ([tmp_path / "results" / "c.png"], tmp_path / "results", [])
    assert plan_outputs([c], str(tmp_path / "res.tiff"))[2][0].startswith("-o ")
    assert "would both be written" in plan_outputs([a, b], str(tmp_path / "out"))[2][0]
    assert "would be overwritten" in plan_outputs([c], str(c))[2][0]
    (tmp_path / "file.txt").write_text("")
    assert "not a folder" in plan_outputs([a, c], str(tmp_path / "file.txt"))[2][0]


def test_a_malformed_cache_setting_is_a_setup_error(tmp_path, capsys, monkeypatch, empty_config, sample_rgb):
    (source,) = write_portraits(tmp_path / "in", sample_rgb, ["a.png"])
    monkeypatch.setenv("AILAB_API_KEY", "k")
    monkeypatch.setenv("FACE_BEAUTY_CACHE", "maybe")

    assert main(["retouch", str(source), "-o", str(tmp_path / "out.png")]) == 2
    assert "FACE_BEAUTY_CACHE='maybe' is not understood" in capsys.readouterr().err
    assert (
        main(["retouch", str(source), "-o", str(tmp_path / "out.png"), "--no-cache", "--timeout", "0"]) == 2
    )
    assert "FACE_BEAUTY_CACHE" not in capsys.readouterr().err  # --no-cache never reads it


def test_journal_list_and_forget(emulator, tmp_path, sample_rgb, monkeypatch, capsys, empty_config):
    monkeypatch.setenv("AILAB_API_KEY", EMULATOR_KEY)
    monkeypatch.setenv("AILAB_API_BASE_URL", emulator.base_url)
    sources = write_portraits(tmp_path / "in", sample_rgb, ["a.png", "b.png"])
    assert (
        main(["retouch", "--poll", "0.05", "--no-cache", *map(str, sources), "-o", str(tmp_path / "out")])
        == 0
    )
    capsys.readouterr()

    assert main(["journal", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "(2 task(s))" in listed[0]
    (first_task,) = {line.split("task ")[1].split()[0] for line in listed[1:2]}
    fingerprint = listed[2].split()[0]

    assert main(["journal", "forget", first_task]) == 0
    assert main(["journal", "forget", fingerprint[:10]]) == 0
    assert main(["journal", "forget", "no-such-task"]) == 1
    assert main(["journal", "forget"]) == 2
    capsys.readouterr()
    assert main(["journal", "list"]) == 0
    assert "(0 task(s))" in capsys.readouterr().out
    assert main(["journal", "forget", "--all"]) == 0
