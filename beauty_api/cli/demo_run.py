"""The offline demo: the emulator on loopback retouches the bundled portrait through the full HTTP path.

It is the README's "try it" command, so it must work on a fresh install with no key and no
network, and it must never touch the user's key or state:

- the emulator runs in this process with a key of its own, and the client is built with that
  key and the emulator's address explicitly (AILAB_API_KEY and the config file are never read);
- each step is called directly on the client and the codec (encode -> multipart submit -> poll
  -> CDN download -> decode), so every run shows the real path and its real timings; the task
  journal and the result cache are not involved (nothing is written to the user's state dir).

With torch installed the emulator answers with the local engine's real retouching (our own looks,
not the API's); without torch it answers with a deterministic stand-in, and the demo says which.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..api.client import ClientSettings, FaceBeautyClient, SubmitReceipt
from ..api.protocol import KEY_HEADER  # the one definition
from ..clock import Deadline
from ..codec import (
    EncodedImage,
    attach_alpha,
    decode_image,
    encode_for_upload,
    fit_to_size,
    load_image_file,
    save_image,
)
from ..ledger.journal_claims import Claim
from ..params import SLIDER_NAMES, BeautyParams

T = TypeVar("T")

SAMPLE_PORTRAIT = Path(__file__).resolve().parents[1] / "data" / "sample_portrait.png"
DEMO_PARAMS = BeautyParams(
    whitening=60,
    smoothing=80,
    thinface=40,
    shrink_face=30,
    enlarge_eye=60,
    remove_eyebrow=0,
    filter_type="Sakura",
)
# The emulator takes this long per task, so the wait shows queued -> processing -> done.
DEMO_PROCESSING_SECONDS = 0.4
# Polling fitted to the emulator (the real API needs seconds; the client default starts at 1 s).
DEMO_SETTINGS = ClientSettings(timeout=30.0, poll_initial=0.1, poll_max=0.25)
BEFORE_AFTER = "before_after.png"
RETOUCHED = "retouched.png"


@dataclass(frozen=True)
class Stage:
    """One timed step of the path."""

    name: str
    seconds: float
    detail: str


@dataclass(frozen=True)
class DemoResult:
    """What the demo did: the files written and each stage's duration."""

    before_after: Path
    retouched: Path
    base_url: str
    cdn_base_url: str
    task_id: str
    params: BeautyParams
    processing_seconds: float
    stages: list[Stage] = field(default_factory=list)
    key_sent_to_cdn: bool = False
    write_seconds: float = 0.0
    effect: str = "stand-in"  # what the emulator answered with: "local" (real retouching) or "stand-in"

    @property
    def total(self) -> float:
        return sum(stage.seconds for stage in self.stages)


class _Stopwatch:
    """Times each call and keeps the stages in order."""

    def __init__(self) -> None:
        self.stages: list[Stage] = []

    def time(self, name: str, call: Callable[[], T], detail: Callable[[T], str]) -> T:
        start = time.perf_counter()
        value = call()
        self.stages.append(Stage(name, time.perf_counter() - start, detail(value)))
        return value


def _settings_text(params: BeautyParams) -> str:
    sliders = ", ".join(f"{name.replace('_', ' ')} {getattr(params, name)}" for name in SLIDER_NAMES)
    number = f" ({params.filter_type})" if params.filter_type else ""
    return f"{sliders}; filter {params.filter_label}{number}"


def run_demo(
    output_dir: Path,
    *,
    params: BeautyParams = DEMO_PARAMS,
    processing_seconds: float = DEMO_PROCESSING_SECONDS,
) -> DemoResult:
    """Retouch the bundled portrait through an in-process emulator; write the before/after images."""
    from ..emulator import Emulator

    source = load_image_file(SAMPLE_PORTRAIT)
    key = "demo-" + secrets.token_hex(8)  # the emulator's own key: never the user's
    watch = _Stopwatch()
    states: list[str] = []
    with Emulator(api_key=key, processing_seconds=processing_seconds) as emulator:
        if emulator.effect == "local":  # loaded once, up front, so "submit" times the HTTP path only
            from ..emulator.effect import warm_up_local_engine

            watch.time(
                "engine",
                warm_up_local_engine,
                lambda _: "emulator's local engine loaded (torch, face models)",
            )
        client = FaceBeautyClient(api_key=key, base_url=emulator.base_url, settings=DEMO_SETTINGS)
        deadline = client.new_deadline()
        upload = watch.time(
            "encode",
            lambda: encode_for_upload(source),
            lambda up: f"{source.size[0]}x{source.size[1]} -> {up.mime_type}, {len(up.data) / 1024:.0f} KiB",
        )
        receipt = watch.time(
            "submit",
            lambda: _demo_submit(client, upload, params, deadline),
            lambda r: f"multipart POST, task {r.task_id}",
        )
        url = watch.time(
            "wait",
            lambda: client.wait(
                receipt.task_id, deadline=deadline, on_state=lambda s: states.append(s.label)
            ),
            lambda _: (
                f"{len(states)} poll(s): {' -> '.join(_dedupe(states))} "
                f"(emulator set to {processing_seconds:g} s of processing)"
            ),
        )
        data = watch.time(
            "download",
            lambda: client.download(url, deadline=deadline),
            lambda d: f"{len(d) / 1024:.0f} KiB from the result host",
        )
        result = watch.time(
            "decode",
            lambda: attach_alpha(fit_to_size(decode_image(data), source.size), source.alpha),
            lambda rgb: f"{rgb.shape[1]}x{rgb.shape[0]} RGB",
        )
        cdn_headers = emulator.stats.snapshot().cdn_request_headers
        base_url, cdn_base_url, effect = emulator.base_url, emulator.cdn_base_url, emulator.effect
    output_dir.mkdir(parents=True, exist_ok=True)
    retouched = output_dir / RETOUCHED
    before_after = output_dir / BEFORE_AFTER
    start = time.perf_counter()
    save_image(retouched, result)
    save_image(before_after, side_by_side(source.rgb, result[:, :, :3], params, effect))
    write_seconds = time.perf_counter() - start
    return DemoResult(
        before_after=before_after.resolve(),
        retouched=retouched.resolve(),
        base_url=base_url,
        cdn_base_url=cdn_base_url,
        task_id=receipt.task_id,
        params=params,
        processing_seconds=processing_seconds,
        stages=watch.stages,
        key_sent_to_cdn=any(KEY_HEADER in headers for headers in cdn_headers),
        write_seconds=write_seconds,
        effect=effect,
    )


def _dedupe(labels: list[str]) -> list[str]:
    return [label for i, label in enumerate(labels) if i == 0 or labels[i - 1] != label]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def side_by_side(
    before: np.ndarray, after: np.ndarray, params: BeautyParams, effect: str = "stand-in"
) -> np.ndarray:
    """Before | after, each under a small caption band."""
    height, width = before.shape[:2]
    band = max(24, height // 16)
    canvas = Image.new("RGB", (width * 2, height + band), (32, 32, 32))
    canvas.paste(Image.fromarray(before), (0, band))
    canvas.paste(Image.fromarray(np.ascontiguousarray(after)), (width, band))
    draw = ImageDraw.Draw(canvas)
    font = _font(int(band * 0.6))
    draw.text((8, band // 5), "before", fill=(240, 240, 240), font=font)
    engine = "local engine" if effect == "local" else "emulator stand-in effect"
    label = f"after ({engine}, filter {params.filter_label})"
    draw.text((width + 8, band // 5), label, fill=(240, 240, 240), font=font)
    return np.asarray(canvas)


def format_report(result: DemoResult) -> str:
    """What ran, how long each stage took, and where the images are."""
    lines = [
        "Face Beauty Pro demo: offline, against the in-process emulator "
        f"({result.base_url}, results served from {result.cdn_base_url}).",
        "No API key of yours is used or needed, and no credits are spent.",
        f"settings: {_settings_text(result.params)}",
        "",
        "stage        time  detail",
    ]
    for stage in result.stages:
        lines.append(f"{stage.name:<9} {stage.seconds * 1000:>6.0f} ms  {stage.detail}")
    lines.append(
        f"{'total':<9} {result.total * 1000:>6.0f} ms  (then {result.write_seconds * 1000:.0f} ms to write the two PNGs)"
    )
    key_note = (
        "the key WAS sent to the result host" if result.key_sent_to_cdn else "no key sent to the result host"
    )
    lines += [
        f"(task {result.task_id}; {key_note})",
        "",
        f"before/after: {result.before_after}",
        f"retouched:    {result.retouched}",
        "",
        (
            "The emulator answered with the local engine's retouching (our own looks, not the API's). With a key"
            if result.effect == "local"
            else "The emulator's effect is a deterministic stand-in, not the real retouching (install torch "
            "for the local engine). With a key"
        ),
        "(AILAB_API_KEY), the same path on your own photo, 15 credits per new image:",
        "  python -m beauty_api retouch photo.jpg -o photo-retouched.png --smoothing 80 --filter Sakura",
    ]
    return "\n".join(lines)


def _demo_submit(
    client: FaceBeautyClient, upload: EncodedImage, params: BeautyParams, deadline: Deadline
) -> SubmitReceipt:
    """The demo's one submit (to its own in-process emulator: free), through the choke point like any other."""
    from ..ledger.result_cache import NullCache
    from ..run.paid_request import send_paid

    receipt = send_paid(
        client,
        upload,
        params,
        mode="async",
        ledger=None,
        results=NullCache(),
        fingerprint="demo",
        owner="demo",
        deadline=deadline,
        clock=client.clock,
    )
    assert not isinstance(receipt, bytes | Claim)  # no ledger: always sent, async: a receipt
    return receipt
