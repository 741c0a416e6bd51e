"""Dependencies run one way: no module imports a layer above its own (not even inside a
function), and no two modules import each other in a circle.

layers → distributions, flow → contract (specs, hookspecs, registry) → data, api → train,
measure → plan, cell, backends, runner, store, tune → report → runs → cli
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "flowbench"

#: each module prefix and its layer; a module may import only from its layer or below
LAYERS = {
    "flowbench.layers": 0, "flowbench.flat": 0, "flowbench.atomic": 0,
    "flowbench.distributions": 1, "flowbench.flow": 1,
    "flowbench.specs": 2, "flowbench.hookspecs": 2, "flowbench.registry": 2,
    "flowbench.device": 2,
    "flowbench.suitefile": 2, "flowbench.search_spaces": 2,
    "flowbench.data": 3, "flowbench.api": 3,
    "flowbench.train": 4, "flowbench.checkpoint": 4, "flowbench.compile": 4,
    "flowbench.measure": 4,
    "flowbench.references": 4, "flowbench.testing": 4, "flowbench.metadata": 4,
    "flowbench.plan": 5, "flowbench.cell": 5, "flowbench.backends": 5, "flowbench.runner": 5,
    "flowbench.store": 5, "flowbench.runlock": 5, "flowbench.storage": 5, "flowbench.tune": 5,
    "flowbench.pruners": 5, "flowbench.budget": 5,
    "flowbench.report": 6,
    "flowbench.runs": 7,
    "flowbench.cli": 8,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int | None:
    matches = [prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")]
    return LAYERS[max(matches, key=len)] if matches else None


def imports(path: Path) -> set[str]:
    """Every flowbench module ``path`` imports, at any depth of its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # ``from . import commands`` names a module too
            found |= {f"{target}.{alias.name}" for alias in node.names}
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or
                 p.parent != PACKAGE)


def test_every_module_has_a_layer() -> None:
    missing = [module_name(p) for p in MODULES if layer(module_name(p)) is None]
    assert not missing, f"add these modules to LAYERS: {missing}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    own = layer(module_name(path))
    upward = sorted(m for m in imports(path) if (layer(m) or 0) > own)
    assert not upward, f"{module_name(path)} (layer {own}) imports {upward}"


def test_no_import_circle() -> None:
    graph = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}
    graph.pop("flowbench", None)  # the package's lazy namespace imports nothing at import time
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            # a package's __init__ is imported with any of its modules; edges into a package
            # from its own modules are that, not a circle
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join(trail + [node, nxt]))
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_the_contract_imports_without_torch() -> None:
    """``flowbench.specs`` (and a plugin's ``from flowbench import FlowSpec, hookimpl``) do
    not import torch."""
    import subprocess

    code = ("import sys; import flowbench.specs, flowbench.hookspecs; "
            "from flowbench import FlowSpec, SuiteSpec, hookimpl; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
