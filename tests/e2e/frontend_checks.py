"""Checks that hold in every frontend (1.27.10 as ComfyUI 0.3.64 ships it, 1.58.1 through
--front-end-root), with Vue nodes on or off, and the checks of the translated UI.

They drive the page through `app` and the server's HTTP API only (load a workflow, queue it,
interrupt), never through a frontend's buttons, whose markup changes between versions; what they
check is what the page shows: the DOM text a person reads, its line breaks, its size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graph_ui import close_dialogs, node_ids, nodes_on_screen, open_app
from playwright.sync_api import Page
from servers import post_json
from session import CREDITS_PER_IMAGE, Run, lines_of, watch_run

MAIN_TEMPLATE = "Retouch a portrait"
LOCALES = Path(__file__).resolve().parents[2] / "locales"
# What a speaker of each language types into the node search to find the node.
LANGUAGE_SEARCH = {"zh": "美颜", "ja": "美顔", "ko": "뷰티"}


def set_setting(page: Page, key: str, value: Any) -> None:
    page.evaluate("async ([k, v]) => { await app.extensionManager.setting.set(k, v); }", [key, value])


def use_vue_nodes(page: Page, url: str, enabled: bool) -> None:
    """Switch the "Nodes 2.0" renderer (setting Comfy.VueNodes.Enabled) and reload the page."""
    set_setting(page, "Comfy.VueNodes.Enabled", enabled)
    open_app(page, url)


def queue_from_script(page: Page) -> None:
    page.evaluate("() => app.queuePrompt(0, 1)")


def load_template(run: Run, name: str = MAIN_TEMPLATE) -> None:
    run.page.evaluate("async (wf) => { await app.loadGraphData(wf); }", run.templates[name])
    time.sleep(2.0)
    close_dialogs(run.page)
    (run.node_id,) = node_ids(run.page, "FaceBeautyPro")


def node_shot(run: Run, name: str, node_types: tuple[str, ...] = ("FaceBeautyPro",)) -> None:
    """A picture of the nodes of these types (and a margin), not of the whole window."""
    boxes = [node.box for node in nodes_on_screen(run.page) if node.node_type in node_types]
    left, top = min(b.x for b in boxes) - 16, min(b.y for b in boxes) - 16
    right, bottom = max(b.right for b in boxes) + 16, max(b.bottom for b in boxes) + 16
    viewport = run.page.viewport_size or {"width": 1280, "height": 800}
    left, top = max(0, left), max(0, top)
    clip = {
        "x": left,
        "y": top,
        "width": min(viewport["width"], right) - left,
        "height": min(viewport["height"], bottom) - top,
    }
    run.page.screenshot(path=str(run.shots / f"{run.label}-{name}.png"), clip=clip)


def shown_text(page: Page, needle: str) -> dict[str, Any] | None:
    """The smallest visible element (or textarea) showing `needle`: its text as rendered
    (innerText: line breaks as the browser lays them out) and whether it is cut off."""
    return page.evaluate(  # type: ignore[no-any-return]
        """(needle) => {
          const clean = (s) => (s || '').replace(/\\u2060/g, '');
          let best = null;
          for (const e of document.querySelectorAll('body *')) {
            const text = e.tagName === 'TEXTAREA' ? e.value : clean(e.innerText);
            if (!text.includes(needle)) continue;
            const r = e.getBoundingClientRect();
            if (r.width === 0 || r.height === 0 || getComputedStyle(e).visibility === 'hidden') continue;
            if (!best || text.length <= best.text.length) {
              best = {text: clean(text), tag: e.tagName, cut: e.scrollHeight > e.clientHeight + 2,
                      box: [r.x, r.y, r.width, r.height]};
            }
          }
          return best;
        }""",
        needle,
    )


def check_finished_text_stays(run: Run) -> list[str]:
    if not run.comfy.with_key:  # after the other suite's missing-key check
        run.comfy.stop()
        run.comfy.start()
        open_app(run.page, run.comfy.url)
    load_template(run)
    run.fresh_request()
    problems: list[str] = []
    seen_two_lines: dict[str, Any] = {}

    def mid_run(state: dict[str, Any]) -> None:
        if not seen_two_lines and "so far" in state["text"] and len(lines_of(state)) == 2:
            first = lines_of(state)[0]
            shown = shown_text(run.page, first.split(" ")[0])
            if shown and "so far" in shown["text"]:
                seen_two_lines.update(shown)
                node_shot(run, "running")

    samples = watch_run(run, timeout=90, on_sample=mid_run, queue=queue_from_script)
    final = lines_of(samples[-1])
    if not seen_two_lines:
        problems.append("no two-line progress text ('... so far') was seen on the page")
    elif "\n" not in seen_two_lines["text"]:
        problems.append(f"the two-line progress text is shown on one line: {seen_two_lines['text']!r}")
    if not final or not final[0].startswith("done · 1 new"):
        problems.append(f"after the job the node says {final} ({samples[-1]['source']})")
    paid = f"paid {CREDITS_PER_IMAGE} credits when made"
    shown = shown_text(run.page, paid)
    if not shown:
        problems.append(f"after the job '{paid}' is not on the page")
    elif "done · 1 new" not in shown["text"] or "\n" not in shown["text"]:
        problems.append(f"after the job the node shows {shown['text']!r}")
    node_shot(run, "finished", ("FaceBeautyPro", "PreviewAny"))
    return problems


def check_report_fits(run: Run) -> list[str]:
    """The Report (Preview Any) shows every line of the report, in both frontends (1.58 adds a
    preview_mode widget under the text)."""
    shown = shown_text(run.page, "total: 1 image(s)")
    if not shown:
        return ["the report's last line is not on the page"]
    problems = []
    if shown["cut"]:
        problems.append(f"the report is cut off (scrolls): {shown['text']!r}")
    (preview,) = [node for node in nodes_on_screen(run.page) if node.node_type == "PreviewAny"]
    _, y, _, h = shown["box"]
    if y + h > preview.box.bottom + 1:
        problems.append(f"the report's text runs past its node: {shown['box']} vs {preview.box}")
    return problems


def check_cancel_text_stays(run: Run) -> list[str]:
    run.fresh_request()
    cancelled = False

    def press_cancel(state: dict[str, Any]) -> None:
        nonlocal cancelled
        if not cancelled and "processing" in state["text"]:
            post_json(f"{run.comfy.url}/interrupt", {})  # what the Cancel button sends
            cancelled = True

    samples = watch_run(run, timeout=60, on_sample=press_cancel, queue=queue_from_script)
    final = lines_of(samples[-1])
    problems = []
    if not cancelled:
        problems.append("the run finished before it could be cancelled")
    if final[:1] != ["cancelled"] or "without paying" not in " ".join(final):
        problems.append(f"after Cancel the node says {final}")
    if not shown_text(run.page, "without paying"):
        problems.append("after Cancel 'without paying' is not on the page")
    node_shot(run, "cancelled")
    samples = watch_run(run, timeout=60, queue=queue_from_script)
    final = lines_of(samples[-1])
    if not final or not final[0].startswith("done · 1 resumed"):
        problems.append(f"the re-run after Cancel says {final}")
    return problems


def check_missing_key_text(run: Run) -> list[str]:
    """Restarts ComfyUI without a key (keep it last): the message names AILAB_API_KEY=<your key>,
    shown as those characters, neither escaped nor taken for a tag."""
    run.comfy.stop()
    run.comfy.start(with_key=False)
    open_app(run.page, run.comfy.url)
    load_template(run)
    run.fresh_request()
    samples = watch_run(run, timeout=60, queue=queue_from_script)
    close_dialogs(run.page)
    final = lines_of(samples[-1])
    problems = []
    if final[:1] != ["error"]:
        seen = sorted({(s["source"], s["text"][:40]) for s in samples}, key=str)
        problems.append(f"without a key the node says {final}; seen during the run: {seen}")
    shown = shown_text(run.page, "AILAB_API_KEY")
    if not shown or "AILAB_API_KEY=<your key>" not in shown["text"]:
        problems.append(f"the page shows {shown and shown['text']!r}, not 'AILAB_API_KEY=<your key>'")
    if shown and "&lt;" in shown["text"]:
        problems.append("the text is shown escaped (&lt;)")
    node_shot(run, "missing-key")
    return problems


def translations(lang: str) -> dict[str, Any]:
    return json.loads((LOCALES / lang / "nodeDefs.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def search_shot(run: Run, term: str, name: str) -> list[str]:
    """Type `term` into the node search (double-click on the empty canvas); the options shown."""
    area = run.page.evaluate(
        "() => { const r = document.querySelector('#graph-canvas').getBoundingClientRect(); "
        "return [r.x, r.y, r.width, r.height]; }"
    )
    run.page.mouse.dblclick(area[0] + area[2] * 0.5, area[1] + area[3] - 120)
    box = run.page.locator("input[type='text']:focus, .p-autocomplete-input, input[role='combobox']").first
    box.wait_for(timeout=10_000)
    box.fill(term)
    time.sleep(1.5)
    run.shot(name)
    options = run.page.locator("[role='option'], .p-autocomplete-option, li").all_inner_texts()
    run.page.keyboard.press("Escape")
    time.sleep(0.3)
    return options


def check_languages(run: Run) -> list[str]:
    problems = []
    try:
        for lang, term in LANGUAGE_SEARCH.items():
            set_setting(run.page, "Comfy.Locale", lang)
            open_app(run.page, run.comfy.url)
            load_template(run)
            expected = translations(lang)["FaceBeautyPro"]
            labels = run.page.evaluate(
                """(id) => { const n = app.graph.getNodeById(id);
                   return {title: n.title, widgets: Object.fromEntries(n.widgets.map(w => [w.name, w.label])),
                           outputs: n.outputs.map(o => o.localized_name || o.label || o.name)}; }""",
                run.node_id,
            )
            # A template keeps its saved title; a node added from the search gets the translated name.
            for input_id in (
                "whitening",
                "smoothing",
                "thinface",
                "shrink_face",
                "enlarge_eye",
                "remove_eyebrow",
            ):
                if labels["widgets"].get(input_id) != expected["inputs"][input_id]["name"]:
                    problems.append(f"{lang}: {input_id} reads {labels['widgets'].get(input_id)!r}")
            if labels["outputs"] != [expected["outputs"]["0"]["name"], expected["outputs"]["1"]["name"]]:
                problems.append(f"{lang}: outputs read {labels['outputs']}")
            node_shot(run, f"i18n-{lang}-node")
            options = search_shot(run, term, f"i18n-{lang}-search")
            if not any(expected["display_name"] in option for option in options):
                problems.append(f"{lang}: searching {term!r} does not list {expected['display_name']!r}")
    finally:
        set_setting(run.page, "Comfy.Locale", "en")
        open_app(run.page, run.comfy.url)
    return problems


CheckList = list[tuple[str, Callable[[Run], list[str]]]]
ANY_FRONTEND_CHECKS: CheckList = [
    ("frontend: the finished node keeps its text; two lines stay two", check_finished_text_stays),
    ("frontend: the Report shows every line", check_report_fits),
    ("frontend: Cancel's text stays, the re-run resumes", check_cancel_text_stays),
    ("frontend: 'AILAB_API_KEY=<your key>' shown as written (restarts ComfyUI)", check_missing_key_text),
]
LANGUAGE_CHECKS: CheckList = [
    ("language: zh, ja, ko node and search translated", check_languages),
]
