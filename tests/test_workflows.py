"""The example workflows load in ComfyUI as saved: every node known, every widget value valid.

Checked offline against our nodes' INPUT_TYPES and a transcription of the core nodes'
/object_info (tests/comfy_fixtures/core_object_info.json), with the frontend's rules for
turning widgets into `widgets_values` (conventions.md section 4): one value per widget input
in INPUT_TYPES order (required, then optional), sockets and forceInput skipped, an extra
control value after an INT/COMBO with control_after_generate (and any INT named seed or
noise_seed), an extra value after an upload combo.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pack_loader import ROOT, load_pack
from PIL import Image

WORKFLOW_DIR = ROOT / "example_workflows"
CORE_FIXTURE = Path(__file__).resolve().parent / "comfy_fixtures" / "core_object_info.json"

# The file name is the card title in ComfyUI's template browser (frontend 1.27: custom packs get
# no other title or description), so templates are named as titles.
EXPECTED_WORKFLOWS = {
    "Retouch a portrait",
    "Generate then retouch",
    "Before and after",
    "Filter showcase",
    "Retouch offline",
    "Preview offline then API",
}
ANY_TYPE = "*"  # an input of this type (Preview Any) accepts every output type
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
SEED_NAMES = {"seed", "noise_seed"}
# Frontend-only nodes: not in /object_info, no sockets, one text widget.
VIRTUAL_NODES = {"Note", "MarkdownNote"}
# Combos that list the installation's files: any file name of the right kind is valid.
FILE_COMBOS = {
    ("LoadImage", "image"): (".png", ".jpg", ".jpeg", ".webp"),
    ("CheckpointLoaderSimple", "ckpt_name"): (".safetensors", ".ckpt"),
}


def node_info(node_class: type) -> dict[str, Any]:
    """What ComfyUI's /object_info reports for a V1 node class (JSON round trip: tuples -> lists)."""
    inputs = node_class.INPUT_TYPES()
    info = {
        "input": inputs,
        "input_order": {section: list(entries) for section, entries in inputs.items()},
        "output": list(node_class.RETURN_TYPES),
        "output_name": list(getattr(node_class, "RETURN_NAMES", node_class.RETURN_TYPES)),
    }
    return json.loads(json.dumps(info))


@pytest.fixture(scope="module")
def object_info() -> dict[str, dict[str, Any]]:
    info = json.loads(CORE_FIXTURE.read_text(encoding="utf-8"))
    pack = load_pack()
    for name, node_class in pack.NODE_CLASS_MAPPINGS.items():
        info[name] = node_info(node_class)
    return info


def workflow_paths() -> list[Path]:
    return sorted(WORKFLOW_DIR.glob("*.json"))


def load_workflow(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def is_widget(spec: list[Any]) -> bool:
    options = spec[1] if len(spec) > 1 else {}
    kind = spec[0]
    return (isinstance(kind, list) or kind in WIDGET_TYPES or kind == "COMBO") and not options.get(
        "forceInput", False
    )


def sockets(info: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(name, type, required) of every socket input, in INPUT_TYPES order."""
    found = []
    for section in ("required", "optional"):
        for name, spec in info["input"].get(section, {}).items():
            if not is_widget(spec):
                found.append((name, spec[0], section == "required"))
    return found


def widget_problems(node_type: str, info: dict[str, Any], values: list[Any]) -> list[str]:
    """Walk `values` along the widget inputs of `info`; describe every mismatch."""
    problems: list[str] = []
    position = 0
    missing = object()

    def take(what: str) -> Any:
        nonlocal position
        if position >= len(values):
            problems.append(f"missing widgets_values entry for {what}")
            return missing
        value = values[position]
        position += 1
        return value

    for section in ("required", "optional"):
        for name, spec in info["input"].get(section, {}).items():
            if not is_widget(spec):
                continue
            options = spec[1] if len(spec) > 1 else {}
            kind = spec[0]
            value = take(name)
            if value is missing:
                return problems
            problems += value_problems(node_type, name, kind, options, value)
            if options.get("control_after_generate") or (kind == "INT" and name in SEED_NAMES):
                control = take(f"{name} control_after_generate")
                if control is missing:
                    return problems
                if control not in CONTROL_VALUES:
                    problems.append(f"{name}: control value {control!r} not one of {sorted(CONTROL_VALUES)}")
            if options.get("image_upload"):
                upload = take(f"{name} upload")
                if upload is missing:
                    return problems
                if upload != "image":
                    problems.append(f"{name}: upload widget value {upload!r}, expected 'image'")
    if position != len(values):
        problems.append(f"{len(values)} widgets_values, expected {position}")
    return problems


def value_problems(node_type: str, name: str, kind: Any, options: dict[str, Any], value: Any) -> list[str]:
    if isinstance(kind, list) or kind == "COMBO":
        choices = kind if isinstance(kind, list) else options.get("options", [])
        extensions = FILE_COMBOS.get((node_type, name))
        if extensions is not None:
            ok = isinstance(value, str) and value.lower().endswith(extensions)
            return [] if ok else [f"{name}: {value!r} is not a {'/'.join(extensions)} file name"]
        return [] if value in choices else [f"{name}: {value!r} not in {choices}"]
    if kind == "BOOLEAN":
        return [] if isinstance(value, bool) else [f"{name}: {value!r} is not a boolean"]
    if kind == "STRING":
        return [] if isinstance(value, str) else [f"{name}: {value!r} is not a string"]
    if kind == "INT" and (isinstance(value, bool) or not isinstance(value, int)):
        return [f"{name}: {value!r} is not an integer"]
    if kind == "FLOAT" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return [f"{name}: {value!r} is not a number"]
    problems = []
    if "min" in options and value < options["min"]:
        problems.append(f"{name}: {value} < min {options['min']}")
    if "max" in options and value > options["max"]:
        problems.append(f"{name}: {value} > max {options['max']}")
    return problems


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.stem)
def test_workflow_is_valid(path: Path, object_info: dict[str, dict[str, Any]]) -> None:
    workflow = load_workflow(path)
    assert workflow["version"] == 0.4
    for key in ("id", "last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra"):
        assert key in workflow, f"top-level {key!r} missing"
    nodes = {node["id"]: node for node in workflow["nodes"]}
    assert len(nodes) == len(workflow["nodes"]), "node ids are not unique"
    links = {link[0]: link for link in workflow["links"]}
    assert len(links) == len(workflow["links"]), "link ids are not unique"
    assert workflow["last_node_id"] >= max(nodes)
    assert workflow["last_link_id"] >= max(links, default=0)

    problems = []
    for node in workflow["nodes"]:
        where = f"node {node['id']} ({node['type']})"
        if node["type"] in VIRTUAL_NODES:
            if node.get("inputs") or node.get("outputs") or len(node["widgets_values"]) != 1:
                problems.append(f"{where}: a note has no sockets and one text")
            continue
        info = object_info.get(node["type"])
        if info is None:
            problems.append(f"{where}: unknown node type")
            continue
        assert node["mode"] == 0, f"{where}: muted or bypassed"
        problems += [f"{where}: {p}" for p in widget_problems(node["type"], info, node["widgets_values"])]

        expected_inputs = sockets(info)
        names = [entry["name"] for entry in node["inputs"]]
        if names != [name for name, _, _ in expected_inputs]:
            problems.append(f"{where}: inputs {names}, expected {[n for n, _, _ in expected_inputs]}")
            continue
        for slot, (entry, (name, kind, required)) in enumerate(
            zip(node["inputs"], expected_inputs, strict=True)
        ):
            if entry["type"] != kind:
                problems.append(f"{where}: input {name} has type {entry['type']}, expected {kind}")
            link_id = entry["link"]
            if link_id is None:
                if required:
                    problems.append(f"{where}: required input {name} is not connected")
                continue
            link = links.get(link_id)
            if link is None or link[3] != node["id"] or link[4] != slot:
                problems.append(f"{where}: input {name} names link {link_id}, which does not end here")

        outputs = [(entry["name"], entry["type"]) for entry in node["outputs"]]
        if outputs != list(zip(info["output_name"], info["output"], strict=True)):
            problems.append(f"{where}: outputs {outputs}, expected {info['output']}")
            continue
        for slot, entry in enumerate(node["outputs"]):
            for link_id in entry.get("links") or []:
                link = links.get(link_id)
                if link is None or link[1] != node["id"] or link[2] != slot:
                    problems.append(
                        f"{where}: output {entry['name']} names link {link_id}, which does not start here"
                    )

    for link_id, origin, origin_slot, target, target_slot, kind in workflow["links"]:
        source, sink = nodes.get(origin), nodes.get(target)
        if source is None or sink is None:
            problems.append(f"link {link_id}: missing end node")
            continue
        out_type = object_info[source["type"]]["output"][origin_slot]
        in_entry = sink["inputs"][target_slot]
        if out_type != kind or in_entry["type"] not in (kind, ANY_TYPE):
            problems.append(f"link {link_id}: {out_type} -> {in_entry['type']} labelled {kind}")
        if in_entry["link"] != link_id or link_id not in (source["outputs"][origin_slot]["links"] or []):
            problems.append(f"link {link_id}: not recorded on both ends")

    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_the_four_workflows_exist_with_thumbnails() -> None:
    names = {path.stem for path in workflow_paths()}
    assert names >= EXPECTED_WORKFLOWS
    for name in names:
        thumbnail = WORKFLOW_DIR / f"{name}.jpg"
        assert thumbnail.exists(), f"{name}.json has no {name}.jpg (the frontend only loads .jpg)"
        with Image.open(thumbnail) as image:
            assert image.format == "JPEG"
            assert image.width == 512


def test_workflows_use_the_pack_as_intended() -> None:
    workflows = {path.stem: load_workflow(path) for path in workflow_paths()}
    types = {name: [node["type"] for node in wf["nodes"]] for name, wf in workflows.items()}
    for name, node_types in types.items():
        assert "FaceBeautyPro" in node_types or "FaceBeautyLocal" in node_types, name
    assert {"FaceBeautyLocal", "PreviewImage"} <= set(types["Retouch offline"])
    assert {"FaceBeautyLocal", "FaceBeautyPro", "ImageStitch"} <= set(types["Preview offline then API"])
    assert any("FaceBeautyProOptions" in node_types for node_types in types.values())
    assert {"LoadImage", "SaveImage", "PreviewAny"} <= set(types["Retouch a portrait"])
    assert {"CheckpointLoaderSimple", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage"} <= set(
        types["Generate then retouch"]
    )
    assert types["Generate then retouch"].count("CLIPTextEncode") == 2
    assert "ImageStitch" in types["Before and after"]
    assert types["Filter showcase"].count("FaceBeautyPro") >= 3
    assert "ImageBatch" in types["Filter showcase"]
    showcase_filters = {
        node["widgets_values"][-1]
        for node in workflows["Filter showcase"]["nodes"]
        if node["type"] == "FaceBeautyPro"
    }
    assert len(showcase_filters) >= 3, "the showcase nodes should use different filters"
    for wf in workflows.values():
        for node in wf["nodes"]:
            if node["type"] == "LoadImage":
                # The pack's public-domain portrait, copied into ComfyUI's input folder on load:
                # never ComfyUI's cartoon example.png, which would be sent to the paid API.
                assert node["widgets_values"][0] == load_pack().SAMPLE_INPUT_NAME
            if node["type"] == "KSampler":
                # A fixed seed: re-queueing the graph must not pay for a new retouch each time.
                assert node["widgets_values"][1] == "fixed"


def test_validator_catches_mistakes(object_info: dict[str, dict[str, Any]]) -> None:
    """The checks above are not vacuous: typical hand-editing mistakes are reported."""
    ksampler = object_info["KSampler"]
    good = [1, "fixed", 20, 7.0, "euler", "normal", 1.0]
    assert widget_problems("KSampler", ksampler, good) == []
    assert widget_problems("KSampler", ksampler, [1, 20, 7.0, "euler", "normal", 1.0])  # no control value
    assert widget_problems("KSampler", ksampler, [1, "fixed", 20, 7.0, "nope", "normal", 1.0])
    load_image = object_info["LoadImage"]
    assert widget_problems("LoadImage", load_image, ["example.png", "image"]) == []
    assert widget_problems("LoadImage", load_image, ["example.png"])  # upload value missing
    ours = object_info["FaceBeautyPro"]
    assert widget_problems("FaceBeautyPro", ours, [50] * 6 + ["Sakura"]) == []
    assert widget_problems("FaceBeautyPro", ours, [50] * 5 + [101, "Sakura"])
    assert widget_problems("FaceBeautyPro", ours, [50] * 6 + ["sakura"])  # names are exact
    assert widget_problems("FaceBeautyPro", ours, [50] * 6)


def test_the_report_is_shown_in_at_least_one_template() -> None:
    """The Note mentions the report: some template must wire it to a text preview from core."""
    shown = []
    for path in workflow_paths():
        workflow = load_workflow(path)
        nodes = {node["id"]: node for node in workflow["nodes"]}
        for _, origin, origin_slot, target, _, _ in workflow["links"]:
            if nodes[origin]["type"] == "FaceBeautyPro" and origin_slot == 1:
                shown.append((path.stem, nodes[target]["type"]))
    assert ("Retouch a portrait", "PreviewAny") in shown


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.stem)
def test_template_name_reads_as_a_title(path: Path) -> None:
    """ComfyUI's template browser shows the file name as the card's title and description."""
    name = path.stem
    assert name[:1].isupper(), f"{name!r}: the card title should start with a capital letter"
    assert "_" not in name and name == " ".join(name.split()), f"{name!r}: words separated by single spaces"
    assert len(name) <= 32, f"{name!r}: too long for a card title"
