"""Write the English source of the node translations from the live node definitions.

ComfyUI serves every pack's `locales/<lang>/*.json` at /i18n (app/custom_node_manager.py:
main.json's keys at the top level, nodeDefs.json under `nodeDefs`), and its frontend looks a
node's texts up by class name, input id and output index:

    nodeDefs.<class>.display_name / .description
    nodeDefs.<class>.inputs.<input id>.name / .tooltip     (required and optional inputs)
    nodeDefs.<class>.outputs.<index>.name / .tooltip       (index as a string: "0", "1", ...)
    nodeCategories.<one part of CATEGORY>                  (main.json)

This writes `locales/en/nodeDefs.json` and the `nodeCategories` of `locales/en/main.json`:
names, display names and descriptions escaped for vue-i18n's message compiler (both frontends
compile them), tooltips as they are (1.58 shows them raw, 1.27 compiles them, so a tooltip must
hold no message syntax at all: this refuses one that does). Translators follow this file;
tests/test_locales.py fails when it no longer matches the nodes. Run from the repository root
after changing a node's names, tooltips, description or category:

    python tools/make_locales_en.py            (--check: only report whether it is up to date)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "locales"
EN_NODE_DEFS = LOCALES / "en" / "nodeDefs.json"
EN_MAIN = LOCALES / "en" / "main.json"
COMMAND = "python tools/make_locales_en.py"

# Category parts the frontend translates itself (its own main.json): a pack that shipped them
# would replace the core wording of every node in that category.
CORE_CATEGORY_PARTS = frozenset({"image"})

# vue-i18n reads these as message syntax (`@` even crashes its compiler); the frontend escapes
# them as literal interpolations, `{'@'}`, after doubling backslashes (formatUtil.ts).
VUE_I18N_SYNTAX = "@${}|%"


def escape_i18n_message(text: str) -> str:
    """The frontend's escapeI18nMessage: `text` stored so that vue-i18n's t() renders it verbatim."""
    text = text.replace("\\", "\\\\")
    return "".join(f"{{'{char}'}}" if char in VUE_I18N_SYNTAX else char for char in text)


def check_tooltip(where: str, tooltip: str) -> str:
    """`tooltip`, unless it holds message syntax (which one of the two frontends would mangle)."""
    bad = sorted({char for char in tooltip if char in VUE_I18N_SYNTAX})
    if bad:
        raise ValueError(f"{where}: tooltip holds {' '.join(bad)}; reword it (tooltips are not escaped)")
    return tooltip


def normalize_i18n_key(key: str) -> str:
    """The frontend's normalizeI18nKey: dots would split the key path."""
    return key.replace(".", "_")


def input_entries(node_class: type) -> dict[str, dict[str, str]]:
    """Required then optional inputs (hidden ones are never shown), in definition order."""
    where = node_class.__name__
    spec = node_class.INPUT_TYPES()  # type: ignore[attr-defined]
    entries: dict[str, dict[str, str]] = {}
    for section in ("required", "optional"):
        for input_id, definition in spec.get(section, {}).items():
            options = definition[1] if len(definition) > 1 and isinstance(definition[1], dict) else {}
            entry = {"name": escape_i18n_message(input_id)}
            if options.get("tooltip"):
                entry["tooltip"] = check_tooltip(f"{where}.{input_id}", options["tooltip"])
            entries[normalize_i18n_key(input_id)] = entry
    return entries


def output_entries(node_class: type) -> dict[str, dict[str, str]]:
    """One entry per output; no name where it equals the output's type (the frontend then shows
    its own translation of the type, dataTypes.<TYPE>, and never reads ours)."""
    types: tuple[str, ...] = node_class.RETURN_TYPES  # type: ignore[attr-defined]
    names: tuple[str, ...] = getattr(node_class, "RETURN_NAMES", None) or types
    tooltips: tuple[str, ...] = getattr(node_class, "OUTPUT_TOOLTIPS", None) or ()
    entries: dict[str, dict[str, str]] = {}
    for index, (name, kind) in enumerate(zip(names, types, strict=True)):
        entry = {} if name == kind else {"name": escape_i18n_message(name)}
        if index < len(tooltips) and tooltips[index]:
            entry["tooltip"] = check_tooltip(f"{node_class.__name__} output {index}", tooltips[index])
        if entry:
            entries[str(index)] = entry
    return entries


def node_defs(classes: Mapping[str, type], display_names: Mapping[str, str]) -> dict[str, Any]:
    """nodeDefs.json for these nodes, sorted by class name as the frontend writes it."""
    result: dict[str, Any] = {}
    for class_name in sorted(classes):
        node_class = classes[class_name]
        entry: dict[str, Any] = {
            "display_name": escape_i18n_message(display_names.get(class_name, class_name))
        }
        description = getattr(node_class, "DESCRIPTION", "")
        if description:
            entry["description"] = escape_i18n_message(description)
        inputs = input_entries(node_class)
        if inputs:
            entry["inputs"] = inputs
        outputs = output_entries(node_class)
        if outputs:
            entry["outputs"] = outputs
        result[normalize_i18n_key(class_name)] = entry
    return result


def pack_categories(classes: Mapping[str, type]) -> dict[str, str]:
    """main.json's nodeCategories: the parts of the nodes' categories that the frontend does not translate."""
    parts: dict[str, str] = {}
    for node_class in classes.values():
        for part in node_class.CATEGORY.split("/"):  # type: ignore[attr-defined]
            if part not in CORE_CATEGORY_PARTS:
                parts[normalize_i18n_key(part)] = escape_i18n_message(part)
    return parts


def render(data: Mapping[str, Any]) -> str:
    """The files' layout: 2-space indent, UTF-8 text as is, a final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def expected_files(pack: ModuleType) -> dict[Path, str]:
    """The text each English file should have, for the pack's NODE_CLASS_MAPPINGS."""
    classes = pack.NODE_CLASS_MAPPINGS
    main = json.loads(EN_MAIN.read_text(encoding="utf-8")) if EN_MAIN.exists() else {}
    main["nodeCategories"] = pack_categories(classes)
    return {
        EN_NODE_DEFS: render(node_defs(classes, pack.NODE_DISPLAY_NAME_MAPPINGS)),
        EN_MAIN: render(main),
    }


def load_pack() -> ModuleType:
    """The pack, imported as ComfyUI imports it (tests/pack_loader.py)."""
    spec = importlib.util.spec_from_file_location("pack_loader", ROOT / "tests" / "pack_loader.py")
    assert spec is not None and spec.loader is not None
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)
    pack: ModuleType = loader.load_pack()
    return pack


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected_files(load_pack()).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
    for path in stale:
        print(f"{'out of date' if args.check else 'wrote'}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
