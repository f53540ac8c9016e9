"""Make the `.jpg` thumbnail of every example workflow (ComfyUI's template browser shows `<name>.jpg`).

The pictures use the bundled sample portrait and the emulator's answer, driven by the slider and
filter values saved in each workflow (Face Beauty Pro and Face Beauty (Local) nodes), so a thumbnail
always matches its workflow. With torch installed the emulator answers with the local engine's real
retouching (our own looks, not the API's); without torch, with its stand-in effect. Either way they
are not the real API's output.

Run from the repository root after changing a workflow:

    .venv/bin/python tools/make_workflow_thumbnails.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from beauty_api.emulator.effect import render, resolve_effect  # noqa: E402
from beauty_api.params import SLIDER_NAMES, resolve_filter  # noqa: E402

WORKFLOWS = ROOT / "example_workflows"
SAMPLES = (
    ROOT / "beauty_api" / "data" / "sample_portrait.png",
    Path("/work/shared/images/portrait_astronaut_512.png"),
)
WIDTH = 512
# Split views are cropped to the upper part of the portrait (the face): 512x384 also fits the
# registry's icon limit (800x400), so "Retouch a portrait.jpg" can serve as the pack icon.
SPLIT_HEIGHT = 384
BACKGROUND = (24, 24, 28)
LOCAL_NODE = "FaceBeautyLocal"
RETOUCH_NODES = ("FaceBeautyPro", LOCAL_NODE)
LABEL = (255, 255, 255)


def load_sample() -> np.ndarray:
    """The bundled sample portrait as RGB (the shared test portrait if the sample is missing)."""
    for path in SAMPLES:
        if path.exists():
            return np.array(Image.open(path).convert("RGB"))
    raise SystemExit(f"no sample portrait found (looked at {', '.join(map(str, SAMPLES))})")


def retouch_settings(workflow: dict) -> list[tuple[str, dict[str, int], int | None]]:
    """(title, sliders, filter number) of each retouch node, in node id order; the title is the
    node's own title when it has one, else the filter's name.

    A workflow with both a local and an API node shows the local ones only: the emulator answers
    with the local engine, so a picture labelled as the API's result would be the local one again.
    """
    kinds = {node["type"] for node in workflow["nodes"]} & set(RETOUCH_NODES)
    shown = {LOCAL_NODE} if len(kinds) > 1 else kinds
    settings = []
    for node in sorted(workflow["nodes"], key=lambda n: n["id"]):
        if node["type"] not in shown:
            continue
        values = node["widgets_values"]
        sliders = dict(zip(SLIDER_NAMES, values[: len(SLIDER_NAMES)], strict=True))
        filter_value = values[len(SLIDER_NAMES)]
        settings.append((node.get("title") or str(filter_value), sliders, resolve_filter(filter_value)))
    return settings


def labelled(image: Image.Image, text: str, x: int = 4) -> Image.Image:
    """`image` with a small caption box at the top, `x` pixels from the left."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    left, top, right, bottom = draw.textbbox((0, 0), text)
    draw.rectangle((x, 4, x + right - left + 10, bottom - top + 12), fill=(0, 0, 0))
    draw.text((x + 5, 7), text, fill=LABEL)
    return out


def split_view(before: np.ndarray, after: np.ndarray) -> Image.Image:
    """Left half before, right half after, with a divider line: a "before/after slider" still."""
    width = before.shape[1]
    mixed = before.copy()
    mixed[:, width // 2 :] = after[:, width // 2 :]
    image = Image.fromarray(mixed)
    draw = ImageDraw.Draw(image)
    draw.line((width // 2, 0, width // 2, image.height), fill=LABEL, width=3)
    return labelled(labelled(image, "before"), "after", x=width // 2 + 6)


def side_by_side(images: list[Image.Image]) -> Image.Image:
    """Images in one row, each scaled to the same height."""
    height = images[0].height
    row = Image.new("RGB", (sum(i.width for i in images), height), BACKGROUND)
    x = 0
    for image in images:
        row.paste(image, (x, 0))
        x += image.width
    return row


def grid(images: list[Image.Image], columns: int = 2) -> Image.Image:
    """Images in a grid of `columns` columns (all the same size)."""
    cell_w, cell_h = images[0].size
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (cell_w * columns, cell_h * rows), BACKGROUND)
    for i, image in enumerate(images):
        sheet.paste(image, ((i % columns) * cell_w, (i // columns) * cell_h))
    return sheet


def fitted(rgb: np.ndarray, width: int) -> Image.Image:
    """`rgb` scaled to `width` pixels wide (captions are drawn after scaling, so they stay legible)."""
    image = Image.fromarray(rgb)
    height = round(image.height * width / image.width)
    return image.resize((width, height), Image.Resampling.LANCZOS)


def results_caption(workflow: dict) -> str:
    """The result's caption: "free local preview" where the workflow also pays for the API's version, else "after"."""
    kinds = {node["type"] for node in workflow["nodes"]} & set(RETOUCH_NODES)
    return "free local preview" if len(kinds) > 1 else "after"


def thumbnail(name: str, workflow: dict, portrait: np.ndarray) -> Image.Image:
    """The picture for one workflow: a filter grid, a side-by-side pair, or a split view."""
    effect = resolve_effect("auto")
    results = [
        (title, render(portrait, sliders, number, effect))
        for title, sliders, number in retouch_settings(workflow)
    ]
    if not results:
        raise SystemExit(f"{name}: no Face Beauty Pro or Face Beauty (Local) node")
    if len(results) > 1:
        return grid([labelled(fitted(rgb, WIDTH // 2), title) for title, rgb in results])
    if any(node["type"] in ("ImageStitch", "ImageBatch") for node in workflow["nodes"]):
        before, after = fitted(portrait, WIDTH // 2), fitted(results[0][1], WIDTH // 2)
        return side_by_side([labelled(before, "before"), labelled(after, results_caption(workflow))])
    split = split_view(np.array(fitted(portrait, WIDTH)), np.array(fitted(results[0][1], WIDTH)))
    return split.crop((0, 0, WIDTH, min(SPLIT_HEIGHT, split.height)))


def main() -> None:
    portrait = load_sample()
    for path in sorted(WORKFLOWS.glob("*.json")):
        workflow = json.loads(path.read_text(encoding="utf-8"))
        image = thumbnail(path.stem, workflow, portrait)
        target = path.with_suffix(".jpg")
        image.save(target, "JPEG", quality=85, optimize=True)
        print(f"{target.relative_to(ROOT)}: {image.width}x{image.height}")


if __name__ == "__main__":
    main()
