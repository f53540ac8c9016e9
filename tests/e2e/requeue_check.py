"""A re-queue retries what failed, in a real ComfyUI, at the server level (no browser).

    python tests/e2e/requeue_check.py --comfyui /work/comfyui --python /work/comfy-venv/bin/python

Starts the API emulator and a headless ComfyUI (servers.py), then queues one graph three times
through POST /prompt: two portraits (the sample and its mirror image) batched into one Face
Beauty Pro node with `on_failure = pass through`, its output saved and its report previewed.

1. The API fails the first task (the emulator runs with `--fail-tasks 1`): one image comes out
   unchanged (whichever was submitted first), the other retouched; 15 credits billed.
2. The cause is fixed (the emulator restarted without the fault) and the same graph is queued
   again: ComfyUI runs the node again; the failed image is retouched (one new paid task, 15
   credits), the other comes back from the pack's result cache (0 credits, the same pixels).
3. Queued again: every image succeeded last time, so ComfyUI serves the node from its own cache.

The saved images are copied to --shots (requeue-1-image1.png ...). This check is also one of
run_e2e.py's. Uses the standard library only, so any Python runs it.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from servers import ComfyUI, Emulator, get_json, post_json

REPO = Path(__file__).resolve().parents[2]
SAMPLE_INPUT = "face_beauty_pro_sample_portrait.png"
CREDITS_PER_IMAGE = 15
RETOUCH_NODE, SAVE_NODE, REPORT_NODE = "5", "6", "7"


def requeue_prompt() -> dict[str, Any]:
    """The graph, in ComfyUI's API form: two different portraits in one batch, pass through."""
    sliders = dict(whitening=70, smoothing=80, thinface=40, shrink_face=30, enlarge_eye=50, remove_eyebrow=0)
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": SAMPLE_INPUT}},
        "2": {
            "class_type": "ImageFlip",
            "inputs": {"image": ["1", 0], "flip_method": "y-axis: horizontally"},
        },
        "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "4": {
            "class_type": "FaceBeautyProOptions",
            "inputs": {
                "timeout_seconds": 120,
                "concurrency": 1,  # one task at a time: the first submitted is the one that fails
                "keep_returned_size": False,
                "mode": "async",
                "on_failure": "pass through",
                "use_cache": True,
            },
        },
        RETOUCH_NODE: {
            "class_type": "FaceBeautyPro",
            "inputs": {"image": ["3", 0], **sliders, "filter_type": "Calm", "options": ["4", 0]},
        },
        SAVE_NODE: {
            "class_type": "SaveImage",
            "inputs": {"images": [RETOUCH_NODE, 0], "filename_prefix": "requeue"},
        },
        REPORT_NODE: {"class_type": "PreviewAny", "inputs": {"source": [RETOUCH_NODE, 1]}},
    }


def queue_and_wait(comfy: ComfyUI, prompt: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    """POST /prompt, then poll /history until the prompt is there; returns its history entry."""
    prompt_id = post_json(f"{comfy.url}/prompt", {"prompt": prompt})["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = get_json(f"{comfy.url}/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            return dict(entry)
        time.sleep(0.3)
    raise AssertionError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")


def cached_nodes(entry: dict[str, Any]) -> set[str]:
    """The nodes ComfyUI served from its own cache, from the history's `execution_cached` message."""
    cached: set[str] = set()
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_cached":
            cached.update(str(node) for node in data.get("nodes", []))
    return cached


def png_pixels(path: Path) -> bytes:
    """A PNG's decompressed image data: the pixels, without the metadata that ComfyUI's
    SaveImage writes (the prompt, which differs between runs)."""
    data = path.read_bytes()
    position, chunks = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            chunks.append(data[position + 8 : position + 8 + length])
        position += 12 + length
    return zlib.decompress(b"".join(chunks))


def report_of(entry: dict[str, Any]) -> str:
    return "\n".join(map(str, entry.get("outputs", {}).get(REPORT_NODE, {}).get("text", [])))


def saved_images(comfy: ComfyUI, entry: dict[str, Any]) -> list[Path]:
    images = entry.get("outputs", {}).get(SAVE_NODE, {}).get("images", [])
    return [comfy.base / "output" / image.get("subfolder", "") / image["filename"] for image in images]


def restart_emulator(emulator: Emulator, fail_tasks: int) -> None:
    emulator.stop()
    emulator.fail_tasks = fail_tasks
    emulator.start()


def check_requeue_retries_failed(comfy: ComfyUI, emulator: Emulator, shots: Path) -> list[str]:
    prompt = requeue_prompt()
    problems: list[str] = []
    restart_emulator(emulator, fail_tasks=1)  # the API fails the first task
    try:
        first = queue_and_wait(comfy, prompt)
        billed_first = emulator.credits_billed()
    finally:
        restart_emulator(emulator, fail_tasks=0)  # the cause is fixed: the API works again
    second = queue_and_wait(comfy, prompt)
    billed_second = emulator.credits_billed()
    third = queue_and_wait(comfy, prompt)
    billed_third = emulator.credits_billed()

    runs = {"first": first, "second": second, "third": third}
    for name, entry in runs.items():
        ran = sorted(set(prompt) - cached_nodes(entry), key=int)
        print(f"  {name} queue: {entry.get('status', {}).get('status_str')}; ComfyUI ran nodes {ran}")
        for line in report_of(entry).splitlines():
            print(f"    {line}")
    print(
        f"  billed by the emulator: first {billed_first}, second {billed_second}, third +{billed_third - billed_second} credits"
    )
    for name, entry in runs.items():
        if entry.get("status", {}).get("status_str") != "success":
            problems.append(f"the {name} queue did not succeed: {entry.get('status')}")

    first_report, second_report = report_of(first).splitlines(), report_of(second).splitlines()
    failed = [n for n, line in enumerate(first_report[:2]) if "FAILED (passed through unchanged)" in line]
    if len(failed) != 1:
        problems.append(f"the first queue's report does not show one image passed through: {first_report}")
        return problems
    retried, kept = failed[0], 1 - failed[0]  # which of the two was submitted first may vary
    if not first_report[-1].startswith("queue again to retry"):
        problems.append("the first queue's report does not say that queueing again retries")
    if billed_first != CREDITS_PER_IMAGE:
        problems.append(f"the first queue billed {billed_first} credits, not {CREDITS_PER_IMAGE}")

    if RETOUCH_NODE in cached_nodes(second):
        problems.append("the re-queue after a failed image did not run the node (ComfyUI served its cache)")
    if not second_report[retried].startswith(f"image {retried + 1}: new, task "):
        problems.append(f"the failed image was not retouched by a new task: {second_report[retried]}")
    if not second_report[kept].startswith(f"image {kept + 1}: cached, "):
        problems.append(f"the image that succeeded did not come from the pack's cache: {second_report[kept]}")
    if billed_second != CREDITS_PER_IMAGE:
        problems.append(
            f"the re-queue billed {billed_second} credits, not {CREDITS_PER_IMAGE} (the retried image)"
        )

    if RETOUCH_NODE not in cached_nodes(third):
        problems.append("after a run where every image succeeded, ComfyUI ran the node again")
    if billed_third != billed_second:
        problems.append("the third queue was billed")

    first_files, second_files = saved_images(comfy, first), saved_images(comfy, second)
    if len(first_files) == len(second_files) == 2:
        if png_pixels(first_files[retried]) == png_pixels(second_files[retried]):
            problems.append(
                f"image {retried + 1} (failed, then retried) is the same picture before and after"
            )
        if png_pixels(first_files[kept]) != png_pixels(second_files[kept]):
            problems.append(f"image {kept + 1} (from the cache) changed between the runs")
        shots.mkdir(parents=True, exist_ok=True)
        for run, files in (("1", first_files), ("2", second_files)):
            for number, path in enumerate(files, start=1):
                shutil.copy(path, shots / f"requeue-{run}-image{number}.png")
    else:
        problems.append(f"expected 2 saved images per run, got {len(first_files)} and {len(second_files)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", type=Path, required=True, help="a ComfyUI source tree")
    parser.add_argument("--python", required=True, help="the Python of ComfyUI's environment")
    parser.add_argument("--pack", type=Path, default=REPO, help="the pack to test (default: this checkout)")
    parser.add_argument("--shots", type=Path, default=REPO / "tests" / "e2e" / "out")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="face-beauty-requeue-"))
    emulator = Emulator(args.python, args.pack, work)
    comfy = ComfyUI(args.python, args.comfyui, args.pack, work, emulator.base_url)
    try:
        emulator.start()
        comfy.prepare()
        comfy.start()
        version = get_json(f"{comfy.url}/system_stats").get("system", {}).get("comfyui_version")
        print(f"ComfyUI {version} at {comfy.url} (logs in {work})")
        problems = check_requeue_retries_failed(comfy, emulator, args.shots)
    finally:
        comfy.stop()
        emulator.stop()
    for problem in problems:
        print(f"     {problem}")
    print(f"{0 if problems else 1} passed, {1 if problems else 0} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
