"""The frontend translations: English matches the live nodes, every language covers all of it.

ComfyUI serves `locales/<lang>/main.json` with `nodeDefs.json` under `nodeDefs` at /i18n
(app/custom_node_manager.py), and the frontend (1.27 and 1.58) looks each text up by class,
input id and output index (docs/comfyui.md, "Languages"). A text missing from a language falls
back to English silently, so these tests are what keeps a new widget from shipping untranslated.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.pack_loader import load_pack

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales"
# Languages the frontend offers in Comfy.Locale (1.27.10: the first eight; 1.58.1 adds the rest).
# A folder under any other name is never loaded.
FRONTEND_LOCALES = {"en", "zh", "zh-TW", "ru", "ja", "ko", "fr", "es", "ar", "tr", "pt-BR", "fa", "he", "it"}
REQUIRED = {"zh", "ja", "ko"}
CJK = {"zh", "zh-TW", "ja", "ko"}
LITERAL = re.compile(r"\{'.'\}")  # vue-i18n's literal interpolation: {'$'} renders "$"


@cache
def make_locales() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_locales_en", ROOT / "tools" / "make_locales_en.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(lang: str, name: str) -> Any:
    return json.loads((LOCALES / lang / name).read_text(encoding="utf-8"))


def shipped() -> list[str]:
    return sorted(path.name for path in LOCALES.iterdir() if path.is_dir() and path.name != "en")


def leaves(tree: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(key path, value) for every non-dict value of a nested dict."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, (*path, key))
    else:
        yield path, tree


def test_english_matches_the_live_node_definitions() -> None:
    tool = make_locales()
    for path, text in tool.expected_files(load_pack()).items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        assert current == text, f"{path.relative_to(ROOT)} is out of date: run {tool.COMMAND}"


def test_english_covers_every_node_input_output_and_tooltip() -> None:
    """Independent of the generator: walk NODE_CLASS_MAPPINGS and look each text up."""
    pack = load_pack()
    en = read("en", "nodeDefs.json")
    assert set(en) == set(pack.NODE_CLASS_MAPPINGS)
    for class_name, node_class in pack.NODE_CLASS_MAPPINGS.items():
        entry = en[class_name]
        assert entry["display_name"] == pack.NODE_DISPLAY_NAME_MAPPINGS[class_name]
        spec = node_class.INPUT_TYPES()
        shown = {**spec.get("required", {}), **spec.get("optional", {})}
        assert set(entry["inputs"]) == set(shown), class_name
        for input_id, definition in shown.items():
            assert entry["inputs"][input_id]["name"] == input_id
            assert entry["inputs"][input_id].get("tooltip") == definition[1].get("tooltip"), input_id
        for index, name in enumerate(node_class.RETURN_NAMES):
            assert entry["outputs"][str(index)]["name"] == name
            assert entry["outputs"][str(index)]["tooltip"] == node_class.OUTPUT_TOOLTIPS[index]
    categories = read("en", "main.json")["nodeCategories"]
    assert categories == {"Face Beauty Pro": "Face Beauty Pro"}  # "image" is the frontend's own


def test_the_required_languages_ship_and_every_folder_is_one_the_frontend_loads() -> None:
    assert set(shipped()) >= REQUIRED
    assert set(shipped()) <= FRONTEND_LOCALES
    for lang in shipped():
        assert sorted(path.name for path in (LOCALES / lang).iterdir()) == ["main.json", "nodeDefs.json"]


@pytest.mark.parametrize("lang", shipped())
@pytest.mark.parametrize("name", ["nodeDefs.json", "main.json"])
def test_every_english_text_has_a_translation_and_nothing_else(lang: str, name: str) -> None:
    english = dict(leaves(read("en", name)))
    translated = dict(leaves(read(lang, name)))
    missing = sorted(".".join(path) for path in english.keys() - translated.keys())
    stale = sorted(".".join(path) for path in translated.keys() - english.keys())
    assert not missing, f"{lang}/{name} lacks: {', '.join(missing)}"
    assert not stale, f"{lang}/{name} has texts English no longer has: {', '.join(stale)}"
    for path, text in translated.items():
        assert isinstance(text, str) and text.strip() == text and text, f"{lang}: {'.'.join(path)}"


@pytest.mark.parametrize("lang", shipped())
def test_translations_are_translated_and_keep_the_numbers(lang: str) -> None:
    english = dict(leaves(read("en", "nodeDefs.json")))
    for path, text in leaves(read(lang, "nodeDefs.json")):
        where = f"{lang}: {'.'.join(path)}"
        source = english[path]
        if path[-1] in ("description", "tooltip"):
            assert text != source, f"{where} is still English"
        if lang in CJK:
            assert re.search(r"[^\x00-\x7f]", text), f"{where} is still English"
        # A price, a count or a range that changes in English must change in every language.
        numbers = re.findall(r"\d+", text)
        assert all(number in numbers for number in re.findall(r"\d+", source)), f"{where}: numbers differ"


@pytest.mark.parametrize("lang", ["en", *shipped()])
def test_no_text_holds_message_syntax_that_a_frontend_would_mangle(lang: str) -> None:
    """Names and descriptions are compiled by vue-i18n (syntax escaped as {'x'}); tooltips are
    compiled by 1.27 and shown raw by 1.58, so they may hold neither syntax nor escapes."""
    syntax = make_locales().VUE_I18N_SYNTAX
    for name in ("nodeDefs.json", "main.json"):
        for path, text in leaves(read(lang, name)):
            where = f"{lang}/{name}: {'.'.join(path)}"
            bare = text if path[-1] == "tooltip" else LITERAL.sub("", text)
            assert not any(char in syntax for char in bare), where


def test_escaping_follows_the_frontend() -> None:
    tool = make_locales()
    assert tool.escape_i18n_message("about $0.04 @home {x} a|b") == (
        "about {'$'}0.04 {'@'}home {'{'}x{'}'} a{'|'}b"
    )
    assert tool.normalize_i18n_key("a.b.c") == "a_b_c"
    with pytest.raises(ValueError, match="tooltip holds"):
        tool.check_tooltip("Node.input", "costs $1")
