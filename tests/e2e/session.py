"""One end-to-end run's shared state, and running the graph while watching the node."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graph_ui import click_run, close_dialogs, node_state, set_widget
from playwright.sync_api import Page
from servers import ComfyUI, Emulator, get_json

CREDITS_PER_IMAGE = 15


@dataclass
class Run:
    """Shared state of one end-to-end run."""

    page: Page
    comfy: ComfyUI
    emulator: Emulator
    shots: Path
    label: str
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    main_template: str = ""
    node_id: int = 0
    whitening: int = 11

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{self.label}-{name}.png"))

    def fresh_request(self) -> None:
        """A slider value not sent before: ComfyUI and the pack must really run the node."""
        self.whitening += 1
        set_widget(self.page, self.node_id, "whitening", self.whitening)


def wait_idle(comfy: ComfyUI, started_before: float, timeout: float) -> None:
    """Wait until ComfyUI's queue is empty (after at least a moment, so the run has begun)."""
    time.sleep(max(0.0, started_before + 0.5 - time.monotonic()))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = get_json(f"{comfy.url}/queue")
        if not queue["queue_running"] and not queue["queue_pending"]:
            time.sleep(0.6)  # the last websocket messages reach the page
            return
        time.sleep(0.2)
    raise AssertionError(f"ComfyUI still busy after {timeout:.0f} s")


def watch_run(
    run: Run,
    timeout: float,
    on_sample: Callable[[dict[str, Any]], None] | None = None,
    queue: Callable[[Page], None] | None = None,
) -> list[dict[str, Any]]:
    """Press Run (or `queue`) and sample the node's text and bar every 0.1 s until the queue is empty."""
    samples: list[dict[str, Any]] = []
    (queue or click_run)(run.page)
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        state = node_state(run.page, run.node_id)
        samples.append(state)
        if on_sample is not None:
            on_sample(state)
        if time.monotonic() - started > 1.0:
            queue = get_json(f"{run.comfy.url}/queue")
            if not queue["queue_running"] and not queue["queue_pending"]:
                break
        time.sleep(0.1)
    wait_idle(run.comfy, started, timeout=10)
    close_dialogs(run.page)  # an error dialog would cover the node and block the next click
    samples.append(node_state(run.page, run.node_id))
    return samples


def lines_of(state: dict[str, Any]) -> list[str]:
    return [line for line in str(state["text"]).splitlines() if line.strip()]
