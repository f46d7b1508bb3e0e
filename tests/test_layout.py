"""The package's shape: imports between its modules flow one way (no cycle, not even a deferred one)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "dcicnn"


def internal_imports(module: str) -> set[str]:
    """Every dcicnn module that ``module`` imports anywhere: at the top, inside functions or under TYPE_CHECKING."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "dcicnn":
                found |= {alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").is_file()}
            elif node.module.startswith("dcicnn."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("dcicnn.")}
    return found - {module}


def test_no_import_cycle_between_modules() -> None:
    modules = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    graph = {module: internal_imports(module) for module in modules}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None
    assert set(modules) <= set(order)
    # the layering the README describes: inference and cards never reach for the network or the Hub
    assert "model" not in graph["inference"] and "model" not in graph["hub"] and "model" not in graph["card"]
    assert graph["spec"] == set() and graph["errors"] == set()


def test_networks_are_pure() -> None:
    """``dcicnn/nn`` is the lowest layer: torch only, nothing of the package outside it (no Hub, no inference)."""
    for path in sorted((PACKAGE / "nn").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                assert not name.startswith("dcicnn") or name.startswith("dcicnn.nn"), f"{path.name} imports {name}"
