"""What the node's progress text looks like in each frontend, and the web extension that keeps it.

The frontends render the text three ways (face_beauty_nodes/bridge.py, frontend_text): 1.27 puts
it into the page as HTML, 1.58 escapes it first, 1.58's Vue nodes read it as Markdown. The first
two are simulated here with Python's HTML parser; the Markdown rules that matter are checked as
properties of the text; the browser kit (tests/e2e) checks all three in the real frontends.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import pytest

from tests.pack_loader import ROOT, load_pack

NASTY = [
    "error\nAILAB_API_KEY is not set: export AILAB_API_KEY=<your key>",
    "failed · 13 s\n<img src=x onerror=alert(1)>",
    "failed\nAT&T said &lt;b&gt; &amp; &#60;script&#62;",
    "processing 2 s of ~7 s\n5 s so far",
    "a < b > c && d <!-- e --> </div> <?x?> <![CDATA[y]]>",
    "trailing spaces   \nkept lines",
]


class Page(HTMLParser):
    """What a browser shows for an HTML fragment: its text, <br> as a newline, and any other tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.text += "\n"
        else:
            self.tags.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self.tags.append("/" + tag)

    def handle_data(self, data: str) -> None:
        self.text += data

    def handle_comment(self, data: str) -> None:
        self.tags.append("<!--")

    def handle_decl(self, decl: str) -> None:
        self.tags.append("<!")

    def handle_pi(self, data: str) -> None:
        self.tags.append("<?")

    def unknown_decl(self, data: str) -> None:
        self.tags.append("<![")


def shown(fragment: str) -> Page:
    page = Page()
    page.feed(fragment)
    page.close()
    return page


def nl2br(text: str) -> str:
    return text.replace("\n", "<br />")


def as_read(bridge: ModuleType, page_text: str) -> str:
    """The text a person reads: without the invisible word joiners; HTML collapses the spaces."""
    lines = page_text.replace(bridge.WORD_JOINER, "").split("\n")
    return "\n".join(re.sub(" +", " ", line).strip() for line in lines)


def expected(text: str) -> str:
    return "\n".join(re.sub(" +", " ", line).strip() for line in text.split("\n"))


@pytest.fixture(scope="module")
def bridge() -> ModuleType:
    return load_pack().face_beauty_nodes.bridge  # type: ignore[no-any-return]


@pytest.mark.parametrize("text", NASTY)
def test_frontend_1_27_shows_the_text_and_no_markup(bridge: ModuleType, text: str) -> None:
    """1.27's TextPreviewWidget: innerHTML = nl2br(linkifyHtml(text)), nothing escaped."""
    page = shown(nl2br(bridge.frontend_text(text)))
    assert page.tags == []
    assert as_read(bridge, page.text) == expected(text)


@pytest.mark.parametrize("text", NASTY)
def test_frontend_1_58_shows_the_text_never_escaped(bridge: ModuleType, text: str) -> None:
    """1.58's TextPreviewWidget: nl2br(escapeHtml(text)), then sanitized to <a> and <br>."""
    page = shown(nl2br(html.escape(bridge.frontend_text(text))))
    assert page.tags == []
    assert as_read(bridge, page.text) == expected(text)


@pytest.mark.parametrize("text", NASTY)
def test_markdown_keeps_the_lines_and_sees_no_html(bridge: ModuleType, text: str) -> None:
    """1.58's Vue nodes render it with marked: a hard break ends each line; no tag, comment,
    declaration or entity can start, because `<` and `&` are never followed by what starts one."""
    sent = bridge.frontend_text(text)
    assert sent.split("  \n") == [bridge.frontend_text(line) for line in text.split("\n")]
    assert not re.search(r"<[A-Za-z/!?]", sent)
    assert not re.search(r"&[A-Za-z#]", sent)


def test_plain_text_is_sent_as_it_is(bridge: ModuleType) -> None:
    assert bridge.frontend_text("done · 1 new · 5 s") == "done · 1 new · 5 s"
    assert bridge.frontend_text("done · 1 new\npaid 15 credits") == "done · 1 new  \npaid 15 credits"


def test_the_web_extension_is_served_and_knows_the_nodes_and_the_joiner(bridge: ModuleType) -> None:
    pack = load_pack()
    folder = (ROOT / pack.WEB_DIRECTORY).resolve()
    assert folder == ROOT / "web"
    script = (folder / "face_beauty_status.js").read_text(encoding="utf-8")
    types = set(re.findall(r'"(\w+)"', re.search(r"NODE_TYPES = new Set\(\[(.*?)\]\)", script).group(1)))
    # The nodes that show progress text: the two that run through face_beauty_nodes/runner.py.
    assert types == {"FaceBeautyPro", "FaceBeautyLocal"} <= set(pack.NODE_CLASS_MAPPINGS)
    assert f"\\u{ord(bridge.WORD_JOINER):04x}" in script
    assert '"$$node-text-preview"' in script  # the frontend's widget (both 1.27 and 1.58)
    assert Path(folder / "face_beauty_status.js").stat().st_size < 8_000
