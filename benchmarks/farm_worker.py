"""One worker of bench_farm.py: a list of images through the CLI's `retouch` or the ComfyUI node, in-process.

Run by bench_farm.py, not by hand: `python benchmarks/farm_worker.py {cli,node} --list FILE
--out DIR --stats FILE [--concurrency N] [--batch N]`. The ledger (whichever FACE_BEAUTY_LEDGER_URL
chooses) is timed: every journal and cache call, and every image's `ApiBackend.retouch`, add to
totals that are appended as one JSON line to --stats when the run ends normally (a killed run
leaves none). "node" loads the pack the way ComfyUI does (tests/pack_loader.py) and calls the
Face Beauty Pro node's FUNCTION on batches of tensors, as a queued workflow would.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "tests")]

SETTINGS = {"filter": "Sakura"}  # the same request from the CLI and the node: same fingerprint
LEDGER_METHODS = (
    "claim",
    "mark_sending",
    "record_submitted",
    "record_unknown",
    "record_answered",
    "record_result_url",
    "record_done",
    "release",
    "forget",
    "heartbeat",
)
CACHE_METHODS = ("get", "put")

_lock = threading.Lock()
TOTALS = {"ledger_s": 0.0, "ledger_calls": 0, "image_s": 0.0, "images": 0}


def _timed(function: Any, key: str, count: str) -> Any:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent = time.perf_counter() - start
            with _lock:
                TOTALS[key] += spent
                TOTALS[count] += 1

    return wrapper


def instrument() -> None:
    """Time the ledger's calls and each image, whichever backend the run uses."""
    from beauty_api.ledger.journal import TaskJournal
    from beauty_api.ledger.postgres_cache import PostgresResultCache
    from beauty_api.ledger.postgres_journal import PostgresJournal
    from beauty_api.ledger.result_cache import ResultCache
    from beauty_api.run.api_backend import ApiBackend

    for cls, names in (
        (TaskJournal, LEDGER_METHODS),
        (PostgresJournal, LEDGER_METHODS),
        (ResultCache, CACHE_METHODS),
        (PostgresResultCache, CACHE_METHODS),
    ):
        for name in names:
            setattr(cls, name, _timed(getattr(cls, name), "ledger_s", "ledger_calls"))
    ApiBackend.retouch = _timed(ApiBackend.retouch, "image_s", "images")  # type: ignore[method-assign]


def run_cli(inputs: list[str], out: Path, concurrency: int) -> int:
    from beauty_api.cli import main

    argv = ["retouch", *inputs, "-o", str(out) + "/", "--concurrency", str(concurrency), "--poll", "0.05"]
    return main([*argv, "--filter", SETTINGS["filter"]])


def run_node(inputs: list[str], out: Path, concurrency: int, batch: int) -> int:
    import numpy as np
    import torch
    from pack_loader import PACK_NAME, load_pack
    from PIL import Image

    pack = load_pack()
    nodes = sys.modules[f"{PACK_NAME}.nodes"]
    node = pack.NODE_CLASS_MAPPINGS["FaceBeautyPro"]()
    options = nodes.FaceBeautyRunOptions(concurrency=concurrency)
    sliders = dict.fromkeys(
        ("whitening", "smoothing", "thinface", "shrink_face", "enlarge_eye", "remove_eyebrow"), 50
    )
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for start in range(0, len(inputs), batch):
        chunk = inputs[start : start + batch]
        arrays = []
        for path in chunk:
            with Image.open(path) as image:
                arrays.append(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
        tensor = torch.from_numpy(np.stack(arrays))
        try:
            result, _report = asyncio.run(
                node.retouch(tensor, **sliders, filter_type=SETTINGS["filter"], options=options)
            )
        except Exception as error:  # ComfyUI shows the error and goes on with the next queued prompt
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        for path, picture in zip(chunk, result, strict=True):
            rgb = (picture.numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
            Image.fromarray(rgb).save(out / Path(path).name)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=("cli", "node"))
    parser.add_argument("--list", required=True, help="a file with one input path per line")
    parser.add_argument("--out", required=True)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10, help="node: images per queued workflow")
    args = parser.parse_args()
    instrument()
    inputs = [line for line in Path(args.list).read_text().splitlines() if line]
    started = time.perf_counter()
    if args.kind == "cli":
        code = run_cli(inputs, Path(args.out), args.concurrency)
    else:
        code = run_node(inputs, Path(args.out), args.concurrency, args.batch)
    with _lock:
        line = json.dumps({**TOTALS, "wall_s": time.perf_counter() - started, "code": code})
    with open(args.stats, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
