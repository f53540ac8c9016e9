"""Every call into ComfyUI itself, in one place, each a no-op when ComfyUI is absent.

ComfyUI modules are looked up at CALL time, never at import: the pack must import (and its
tests must run) without ComfyUI, and inside ComfyUI these modules are already loaded by the
time a node runs, so the lookup costs a dict access. Any failure to find or use them degrades
to "do nothing" (there is then nobody to show progress to and no flag to honour), except the
interrupt exception itself, which must propagate so ComfyUI reports the run as interrupted.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Protocol

log = logging.getLogger("beauty_api.nodes.bridge")  # one logger tree for the pack


# Top-level names too generic to import blindly: outside ComfyUI, `import server` could pick up
# some unrelated module from sys.path. Inside ComfyUI it is always loaded before any node runs.
_LOADED_ONLY = frozenset({"server"})


def _comfy_module(name: str) -> ModuleType | None:
    """The ComfyUI module `name`, imported on first use; None when ComfyUI is not there."""
    module = sys.modules.get(name)
    if module is not None or name in _LOADED_ONLY:
        return module
    try:
        return importlib.import_module(name)
    except Exception:  # ImportError, or a ComfyUI half-present in some odd environment
        return None


def check_interrupted() -> None:
    """Raise ComfyUI's own InterruptProcessingException if the user pressed Cancel.

    Using ComfyUI's exception (not one of ours) is what makes the run show as "interrupted"
    rather than as a red error. Note that ComfyUI clears its flag when it raises, so only the
    first caller sees it; `InterruptWatch` (and beauty_api.run.batch) make that sticky.
    """
    model_management = _comfy_module("comfy.model_management")
    throw = getattr(model_management, "throw_exception_if_processing_interrupted", None)
    if throw is not None:
        throw()


def interrupt_exception_type() -> type[BaseException] | None:
    """ComfyUI's InterruptProcessingException class, or None without ComfyUI."""
    model_management = _comfy_module("comfy.model_management")
    return getattr(model_management, "InterruptProcessingException", None)


def is_interrupt(error: BaseException) -> bool:
    """True for ComfyUI's InterruptProcessingException (never true without ComfyUI)."""
    interrupt = interrupt_exception_type()
    return interrupt is not None and isinstance(error, interrupt)


class InterruptWatch:
    """A cancel hook for one node run that stays tripped once an interrupt was seen anywhere.

    ComfyUI's progress-bar hook also consumes the interrupt flag (it calls
    `throw_exception_if_processing_interrupted`), and that happens on the event-loop thread,
    not in the workers; `trip()` hands such an exception to the workers' next check.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._error: BaseException | None = None

    @property
    def tripped(self) -> bool:
        with self._lock:
            return self._error is not None

    def trip(self, error: BaseException) -> None:
        """Make every later check raise `error`'s type (the first error wins)."""
        with self._lock:
            if self._error is None:
                self._error = error

    def raise_if_tripped(self) -> None:
        """Raise a new exception of the tripping error's type, if there was one."""
        with self._lock:
            error = self._error
        if error is not None:
            raise _fresh(error)

    def __call__(self) -> None:
        self.raise_if_tripped()
        try:
            check_interrupted()
        except BaseException as caught:
            self.trip(caught)
            raise


def _fresh(error: BaseException) -> BaseException:
    """A new instance of `error`'s type, so threads never share (and mutate) one traceback."""
    try:
        return type(error)(*error.args)
    except Exception:
        return error


class ProgressBarLike(Protocol):
    def update_absolute(self, value: int, total: int | None = None) -> None: ...


class _NullProgressBar:
    """Stands in for comfy.utils.ProgressBar outside ComfyUI."""

    def update_absolute(self, value: int, total: int | None = None) -> None:
        return None


def progress_bar(total: int, node_id: str | None = None) -> ProgressBarLike:
    """The node's progress bar (comfy.utils.ProgressBar), or one that does nothing.

    The node id is passed explicitly so updates land on the right node even when they are
    made outside ComfyUI's executing context.
    """
    utils = _comfy_module("comfy.utils")
    bar_class = getattr(utils, "ProgressBar", None)
    if bar_class is None:
        return _NullProgressBar()
    try:
        return bar_class(total, node_id=node_id)
    except TypeError:  # a ComfyUI older than the node_id argument
        return bar_class(total)


# U+2060 WORD JOINER: invisible, and no line break opportunity.
WORD_JOINER = "\u2060"
# Markdown's hard line break: two spaces before the newline.
MARKDOWN_BREAK = "  \n"


def frontend_text(text: str) -> str:
    """`text` as it must be sent so that every frontend shows exactly it, never markup.

    The frontends render progress text three ways: 1.27 as HTML (innerHTML after nl2br and
    linkify; nothing escaped), 1.58 as escaped text (escapeHtml, then nl2br), and 1.58's Vue
    nodes as Markdown (marked, then DOMPurify). No escaping suits all three: escaped text shows
    `&lt;` in 1.58, unescaped `<your key>` is a tag in 1.27 and in Markdown. A word joiner after
    every `<` and `&` makes neither a tag nor an entity in any of them, and shows nothing; two
    spaces before each newline make Markdown keep the line break (HTML ignores them).
    """
    text = text.replace("<", "<" + WORD_JOINER).replace("&", "&" + WORD_JOINER)
    return MARKDOWN_BREAK.join(line.rstrip(" ") for line in text.split("\n"))


def send_progress_text(text: str, node_id: str | None) -> None:
    """Show `text` under the node in the ComfyUI frontend, if there is a frontend to show it.

    Sent as frontend_text(text); the pack's web extension (web/face_beauty_status.js) keeps the
    last text on the node after the job, where the frontend (1.58) clears it.
    """
    if node_id is None:
        return
    text = frontend_text(text)
    server = _comfy_module("server")
    prompt_server = getattr(getattr(server, "PromptServer", None), "instance", None)
    send = getattr(prompt_server, "send_progress_text", None)
    if send is None:
        return
    try:
        send(text, node_id)
    except Exception as error:  # a display hiccup must never fail a paid run
        log.debug("send_progress_text failed: %s", error)


def user_directory() -> Path | None:
    """ComfyUI's user directory (where the task journal and result cache go), or None."""
    return _folder_path("get_user_directory")


def input_directory() -> Path | None:
    """ComfyUI's input folder (what Load Image lists), or None outside ComfyUI."""
    return _folder_path("get_input_directory")


def _folder_path(getter: str) -> Path | None:
    """One of ComfyUI's folder_paths getters, or None outside ComfyUI (or when it fails)."""
    get = getattr(_comfy_module("folder_paths"), getter, None)
    if get is None:
        return None
    try:
        directory = get()
    except Exception:
        return None
    return Path(directory) if directory else None


def provide_input_file(source: Path, name: str) -> Path | None:
    """Copy `source` into ComfyUI's input folder as `name` unless a file of that name is there.

    Called when the pack loads, so the templates' Load Image finds the pack's sample portrait
    on a fresh installation. Never overwrites a user's file, and never fails the pack's
    loading: a read-only or missing folder only means the templates show ComfyUI's own image.
    """
    directory = input_directory()
    if directory is None:
        return None
    target = directory / name
    if target.exists():
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{name}.partial")
        shutil.copyfile(source, partial)
        partial.replace(target)
    except OSError as error:
        log.warning("Could not copy the sample portrait into ComfyUI's input folder: %s", error)
        return None
    return target
