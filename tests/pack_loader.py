"""Load the repository the way ComfyUI's load_custom_node does: by file location, as a package.

Shared by the node and workflow tests. The name has hyphens, like a cloned pack folder, so
nothing can import it by name: the pack must use relative imports only.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACK_NAME = "ComfyUI-Face-Beauty-Pro"


def exec_pack(name: str = PACK_NAME, root: Path = ROOT) -> types.ModuleType:
    """Execute the `__init__.py` in `root` (default: this checkout) as package `name` (a fresh
    import each call)."""
    spec = importlib.util.spec_from_file_location(
        name, root / "__init__.py", submodule_search_locations=[str(root)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_pack() -> types.ModuleType:
    """The pack under PACK_NAME, imported once per test session."""
    return sys.modules.get(PACK_NAME) or exec_pack(PACK_NAME)
