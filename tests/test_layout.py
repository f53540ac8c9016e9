"""The house rules, checked on the code's own imports (ast, nothing is imported or run):

- no import cycle between modules;
- no import from a lower layer up (LAYERS, lowest first; ARCHITECTURE.md draws the same picture);
- no module over MAX_LINES lines.

Every import counts: at module top, inside functions (lazy imports) and under TYPE_CHECKING, since
each is a dependency a reader must follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400

# Lowest first. A module may import its own layer (without cycles) and any layer below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("beauty_api.errors",),
    (
        "beauty_api.clock",
        "beauty_api.params",
        "beauty_api.config",
        "beauty_api.timeouts",
        "beauty_api.version",
    ),
    ("beauty_api.codec",),
    ("beauty_api.ledger",),
    ("beauty_api.api",),
    ("beauty_api.run",),
    ("beauty_api.local.faces",),
    ("beauty_api.local.retouch", "beauty_api.local"),
    ("beauty_api.emulator",),
    ("beauty_api.cli", "beauty_api.__main__"),
    ("beauty_api",),  # the package's face: lazy re-exports of the public names
    ("face_beauty_nodes",),
    ("nodes", ""),  # the pack root: nodes.py and __init__.py, which ComfyUI loads
)


def pack_modules() -> dict[str, Path]:
    """Dotted module name (relative to the pack folder, root __init__ = "") -> file."""
    files = [*(REPO / "beauty_api").rglob("*.py"), *(REPO / "face_beauty_nodes").rglob("*.py")]
    files += [REPO / "nodes.py", REPO / "__init__.py"]
    modules = {}
    for path in files:
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _package(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The pack modules `name` imports (resolved to the deepest existing module)."""
    found: set[str] = set()
    package = _package(name, path)

    def add(target: str) -> None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target != name:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join([*base, node.module] if node.module else base)
            elif node.module and node.module.split(".")[0] in ("beauty_api", "face_beauty_nodes"):
                stem = node.module
            else:
                continue
            for alias in node.names:  # `from . import x` imports the module x when there is one
                full = f"{stem}.{alias.name}" if stem else alias.name
                add(full if full in modules else stem)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("beauty_api", "face_beauty_nodes"):
                    add(alias.name)
    found.discard("")  # `from .. import x` of a package face resolves above; the root is never imported
    return found


def layer_of(name: str) -> int:
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = (
                name == prefix or (prefix and name.startswith(prefix + ".")) or (prefix == "" and name == "")
            )
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def import_graph() -> dict[str, set[str]]:
    modules = pack_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_every_pack_module_has_a_layer() -> None:
    unplaced = sorted(name or "(root)" for name in pack_modules() if layer_of(name) < 0)
    assert not unplaced, f"modules in no layer: {unplaced}; add their package to LAYERS in {__file__}"


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    described = ["  " + " <-> ".join(cycle) for cycle in cycles]
    assert not cycles, "import cycles (cut one arrow of each):\n" + "\n".join(described)


def test_no_import_runs_from_a_lower_layer_up() -> None:
    upward = [
        f"  {name or '(root)'} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
        for name, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(name)
    ]
    assert not upward, "imports that run up the layers (see LAYERS):\n" + "\n".join(upward)


def test_no_module_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(REPO)): len(path.read_text(encoding="utf-8").splitlines())
        for path in pack_modules().values()
    }
    large = [f"  {where}: {lines} lines" for where, lines in sorted(sizes.items()) if lines > MAX_LINES]
    assert not large, f"modules over {MAX_LINES} lines (split by concern):\n" + "\n".join(large)


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    """The rules above cannot pass vacuously: a made-up graph with both faults is caught."""
    graph = {"beauty_api.ledger.a": {"beauty_api.api.b"}, "beauty_api.api.b": {"beauty_api.ledger.a"}}
    assert find_cycles(graph) == [["beauty_api.api.b", "beauty_api.ledger.a"]]
    assert layer_of("beauty_api.ledger.a") < layer_of("beauty_api.api.b")
    assert len(import_graph()) > 50 and sum(map(len, import_graph().values())) > 100
