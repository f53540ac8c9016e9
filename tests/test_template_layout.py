"""Every template opens readable: each node inside the saved view, none overlapping, read left to right.

Boxes come from the workflow JSON alone, mapped to the page the way ComfyUI's frontend (1.27,
LiteGraph) draws them: a node's box is its `pos`/`size` plus the title bar above `pos`, and a
graph point p appears at `(p + ds.offset) * ds.scale` from the canvas' top-left corner. The
page is a 1280x800 browser window, measured in a real ComfyUI 0.3.64 (tests/e2e): the canvas
starts below the 40 px menu bar and right of the 40 px sidebar; the workflow tabs cover its top
37 px, and the minimap and zoom controls float over its bottom-right corner. The browser kit
(tests/e2e/run_e2e.py) checks the same in the running UI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pack_loader import ROOT

WORKFLOW_DIR = ROOT / "example_workflows"
TITLE_HEIGHT = 30  # LiteGraph.NODE_TITLE_HEIGHT
WINDOW = (1280, 800)
CANVAS_ORIGIN = (40, 40)  # below the menu bar, right of the sidebar
# Page rectangles (x, y, width, height) that cover the canvas when a workflow is open.
COVERED = {
    "the workflow tabs": (40, 40, 1240, 40),
    "the minimap": (986, 534, 250, 200),
    "the zoom controls": (957, 739, 307, 45),
}
# Below this zoom the frontend draws nodes without their widgets' text (level of detail).
MIN_READABLE_SCALE = 0.6

Box = tuple[float, float, float, float]


def template_paths() -> list[Path]:
    return sorted(WORKFLOW_DIR.glob("*.json"))


def page_boxes(workflow: dict[str, Any]) -> dict[str, Box]:
    """Each node's box on the page, keyed by a readable name."""
    view = workflow["extra"]["ds"]
    scale, (dx, dy) = view["scale"], view["offset"]
    boxes = {}
    for node in workflow["nodes"]:
        (x, y), (w, h) = node["pos"], node["size"]
        top = y - TITLE_HEIGHT
        name = f"{node['type']} {node['id']}" + (f" '{node['title']}'" if node.get("title") else "")
        boxes[name] = (
            CANVAS_ORIGIN[0] + (x + dx) * scale,
            CANVAS_ORIGIN[1] + (top + dy) * scale,
            w * scale,
            (h + TITLE_HEIGHT) * scale,
        )
    return boxes


def overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def layout_problems(workflow: dict[str, Any]) -> list[str]:
    problems = []
    scale = workflow["extra"]["ds"]["scale"]
    if scale < MIN_READABLE_SCALE:
        problems.append(f"saved zoom {scale} is below {MIN_READABLE_SCALE}: widgets would not be drawn")
    boxes = page_boxes(workflow)
    for name, (x, y, w, h) in boxes.items():
        if x < CANVAS_ORIGIN[0] or y < CANVAS_ORIGIN[1] or x + w > WINDOW[0] or y + h > WINDOW[1]:
            problems.append(
                f"{name} is not entirely inside the window: {(round(x), round(y), round(w), round(h))}"
            )
        for panel, rect in COVERED.items():
            if overlaps((x, y, w, h), rect):
                problems.append(f"{name} is under {panel}")
    names = list(boxes)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            if overlaps(boxes[first], boxes[second]):
                problems.append(f"{first} overlaps {second}")
    return problems


def reading_order_problems(workflow: dict[str, Any]) -> list[str]:
    """Links run left to right (or straight down a column); the Note, if any, is read first."""
    nodes = {node["id"]: node for node in workflow["nodes"]}
    problems = []
    for link_id, origin, _, target, _, _ in workflow["links"]:
        if nodes[target]["pos"][0] < nodes[origin]["pos"][0]:
            problems.append(
                f"link {link_id} runs right to left ({nodes[origin]['type']} -> {nodes[target]['type']})"
            )
    notes = [node for node in workflow["nodes"] if node["type"] in ("Note", "MarkdownNote")]
    for note in notes:
        if any(node["pos"][0] < note["pos"][0] for node in workflow["nodes"]):
            problems.append("the Note is not in the first column")
    return problems


@pytest.mark.parametrize("path", template_paths(), ids=lambda p: p.stem)
def test_template_opens_with_every_node_visible_and_none_overlapping(path: Path) -> None:
    workflow = json.loads(path.read_text(encoding="utf-8"))
    problems = layout_problems(workflow) + reading_order_problems(workflow)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_layout_check_catches_what_users_saw() -> None:
    """The checks are not vacuous: the faults reported in issue 12 are all caught."""
    path = next(iter(template_paths()))
    good = json.loads(path.read_text(encoding="utf-8"))
    assert layout_problems(good) == []

    above = json.loads(json.dumps(good))
    above["nodes"][0]["pos"][1] = -300  # a Note above the visible area
    assert any("not entirely inside" in p or "under the workflow tabs" in p for p in layout_problems(above))

    covering = json.loads(json.dumps(good))
    covering["nodes"][1]["pos"] = list(covering["nodes"][0]["pos"])  # one node on top of another
    assert any("overlaps" in p for p in layout_problems(covering))

    corner = json.loads(json.dumps(good))
    corner["nodes"][-1]["pos"] = [corner["nodes"][-1]["pos"][0], 800]  # into the minimap's corner
    assert layout_problems(corner)

    tiny = json.loads(json.dumps(good))
    tiny["extra"]["ds"]["scale"] = 0.4
    assert any("below" in p for p in layout_problems(tiny))

    backwards = json.loads(json.dumps(good))
    first, last = backwards["nodes"][0], backwards["nodes"][-1]
    first["pos"], last["pos"] = last["pos"], first["pos"]
    assert reading_order_problems(backwards)


# Preview Any: frontend 1.58.1 draws a preview_mode widget under the text, so the 300x120 that
# fit 1.27.10 showed four lines of a one-image report and hid the fifth. At 340x180 the whole
# report (two lines, wrapped to six) shows in 1.27.10 and 1.58.1, LiteGraph and Vue nodes alike
# (browser kit, "frontend: the Report shows every line").
MIN_REPORT_SIZE = (340, 180)


@pytest.mark.parametrize("path", template_paths(), ids=lambda p: p.stem)
def test_report_previews_fit_both_frontends(path: Path) -> None:
    workflow = json.loads(path.read_text(encoding="utf-8"))
    for node in workflow["nodes"]:
        if node["type"] == "PreviewAny":
            width, height = node["size"]
            assert width >= MIN_REPORT_SIZE[0] and height >= MIN_REPORT_SIZE[1], (path.name, node["size"])
