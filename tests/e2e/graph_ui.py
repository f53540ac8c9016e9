"""Driving ComfyUI's web UI with Playwright: open templates, read node boxes, the node's text and bar.

What the node shows is read where the frontend keeps it: the progress text is the value of the
node's `$$node-text-preview` widget (frontend 1.27: `useNodeProgressText`), and the bar is
`node.progress` (0..1 while ComfyUI reports the node as running, undefined otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Page, ViewportSize

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
TEXT_WIDGET = "$$node-text-preview"
LAST_TEXT_WIDGET = "face_beauty_last_status"  # web/face_beauty_status.js


@dataclass(frozen=True)
class Box:
    """A rectangle in page pixels."""

    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def overlaps(self, other: Box) -> bool:
        return (
            self.x < other.right and other.x < self.right and self.y < other.bottom and other.y < self.bottom
        )

    def inside(self, other: Box) -> bool:
        return (
            self.x >= other.x
            and self.y >= other.y
            and self.right <= other.right
            and self.bottom <= other.bottom
        )


@dataclass(frozen=True)
class NodeOnScreen:
    node_id: int
    node_type: str
    title: str
    box: Box


def open_app(page: Page, url: str) -> None:
    """Load the UI and close the "Get started with a template" dialog a fresh user may get."""
    page.goto(url)
    page.wait_for_function("() => window.app && window.app.graph && window.app.canvas", timeout=90_000)
    time.sleep(1.5)
    close_dialogs(page)


def close_dialogs(page: Page) -> None:
    for _ in range(3):
        if page.locator(".p-dialog").count() == 0:
            return
        page.keyboard.press("Escape")
        time.sleep(0.4)


def open_template(
    page: Page, category_labels: Sequence[str], title: str, screenshot: str | None = None
) -> str:
    """Open a template the way a user does: sidebar Templates, the pack's category, the card.

    Returns the category label that was found (the first of `category_labels` present);
    `screenshot` saves the dialog with the pack's cards before the card is clicked.
    """
    close_dialogs(page)
    page.locator("button[aria-label='Templates']").first.click()
    dialog = page.locator(".p-dialog")
    dialog.wait_for(timeout=15_000)
    time.sleep(0.5)
    for label in category_labels:
        entry = dialog.get_by_text(label, exact=True)
        if entry.count():
            entry.first.scroll_into_view_if_needed()
            entry.first.click()
            break
    else:
        raise AssertionError(f"no template category named any of {list(category_labels)}")
    card = dialog.get_by_text(title, exact=True)
    card.first.wait_for(timeout=10_000)
    if screenshot:
        time.sleep(1.0)  # thumbnails load
        page.screenshot(path=screenshot)
    card.first.click()
    page.wait_for_function("() => document.querySelectorAll('.p-dialog').length === 0", timeout=20_000)
    time.sleep(1.5)  # the canvas settles (images load, DOM widgets are placed)
    return label


def visible_area(page: Page) -> tuple[Box, list[Box]]:
    """The canvas area a user sees, and the floating panels that cover part of it."""
    raw = page.evaluate(
        """() => {
          const rect = (e) => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; };
          const canvas = rect(document.querySelector('#graph-canvas'));
          const covers = [];
          for (const sel of ['.workflow-tabs-container', '.minimap-main-container', '.p-buttongroup']) {
            for (const e of document.querySelectorAll(sel)) {
              const r = rect(e);
              if (r[2] > 0 && r[3] > 0 && getComputedStyle(e).visibility !== 'hidden') covers.push(r);
            }
          }
          return {canvas, covers};
        }"""
    )
    return Box(*raw["canvas"]), [Box(*cover) for cover in raw["covers"]]


def nodes_on_screen(page: Page) -> list[NodeOnScreen]:
    """Every node's box on the page (title bar included), from the saved view the template opened with."""
    raw = page.evaluate(
        """() => {
          const c = document.querySelector('#graph-canvas').getBoundingClientRect();
          const ds = app.canvas.ds;
          return app.graph._nodes.map(n => {
            const b = n.getBounding();
            return {id: n.id, type: n.type, title: n.title,
                    box: [(b[0] + ds.offset[0]) * ds.scale + c.x, (b[1] + ds.offset[1]) * ds.scale + c.y,
                          b[2] * ds.scale, b[3] * ds.scale]};
          });
        }"""
    )
    return [NodeOnScreen(item["id"], item["type"], item["title"], Box(*item["box"])) for item in raw]


def layout_problems(page: Page) -> list[str]:
    """Nodes outside the visible canvas, under a floating panel, or overlapping each other."""
    area, covers = visible_area(page)
    placed = nodes_on_screen(page)
    problems = []
    for node in placed:
        name = f"{node.node_type} {node.node_id} '{node.title}'"
        if not node.box.inside(area):
            problems.append(f"{name} is not entirely visible: {node.box} outside {area}")
        for cover in covers:
            if node.box.overlaps(cover):
                problems.append(f"{name} is under a floating panel at {cover}")
    for index, first in enumerate(placed):
        for second in placed[index + 1 :]:
            if first.box.overlaps(second.box):
                problems.append(
                    f"{first.node_type} {first.node_id} overlaps {second.node_type} {second.node_id}"
                )
    return problems


def node_ids(page: Page, node_type: str) -> list[int]:
    return list(page.evaluate("(t) => app.graph._nodes.filter(n => n.type === t).map(n => n.id)", node_type))


def node_state(page: Page, node_id: int) -> dict[str, Any]:
    """The node's text and bar (node.progress, or None when not shown).

    The text is the frontend's progress-text widget while it is there, else the pack's own
    widget that keeps the last text (web/face_beauty_status.js; frontend 1.58 removes its
    widget when the job ends). `source` says which; the text is as a person reads it (no word
    joiners, no trailing spaces: face_beauty_nodes/bridge.py, frontend_text).
    """
    state = dict(
        page.evaluate(
            """([id, names]) => {
              const n = app.graph.getNodeById(id);
              for (const name of names) {
                const w = (n.widgets || []).find(w => w.name === name);
                if (w) return {text: String(w.value), source: name,
                               progress: (n.progress === undefined ? null : n.progress)};
              }
              return {text: '', source: null, progress: (n.progress === undefined ? null : n.progress)};
            }""",
            [node_id, [TEXT_WIDGET, LAST_TEXT_WIDGET]],
        )
    )
    state["text"] = "\n".join(line.rstrip() for line in state["text"].replace("\u2060", "").split("\n"))
    return state


def widget_values(page: Page, node_id: int) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """(id) => Object.fromEntries((app.graph.getNodeById(id).widgets || [])
                 .map(w => [w.name, typeof w.value === 'object' ? JSON.stringify(w.value) : w.value]))""",
            node_id,
        )
    )


def set_widget(page: Page, node_id: int, name: str, value: Any) -> None:
    page.evaluate(
        """([id, name, value]) => {
          const n = app.graph.getNodeById(id);
          const w = n.widgets.find(w => w.name === name);
          w.value = value;
          if (w.callback) w.callback(value);
          app.graph.setDirtyCanvas(true, true);
        }""",
        [node_id, name, value],
    )


def click_run(page: Page) -> None:
    page.locator("button[aria-label='Run']").first.click()


def click_cancel(page: Page) -> None:
    page.locator("button[aria-label='Cancel current run']").first.click()


def search_finds(page: Page, term: str, display_name: str) -> bool:
    """Type `term` into the node search box (double-click on the canvas) and look for the node."""
    close_dialogs(page)
    area, _ = visible_area(page)
    page.mouse.dblclick(area.x + area.w / 2, area.bottom - 60)
    box = page.locator(".comfy-vue-node-search-container input, .p-autocomplete-input").first
    box.wait_for(timeout=10_000)
    box.fill(term)
    time.sleep(1.0)
    options = page.locator(".p-autocomplete-option, .comfy-vue-node-search-box li").all_inner_texts()
    page.keyboard.press("Escape")
    time.sleep(0.3)
    return any(display_name in option for option in options)
