"""The package's shape: layers as subpackages, imports flowing one way (down), no cycle, not even a deferred one."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "dcicnn"

#: The layers, lowest first: a module imports from lower layers and from its own package, never from a higher one.
LAYERS: list[set[str]] = [
    {"errors", "spec", "imageio"},  # what every layer may use
    {"nn"},  # the networks, pure
    {"damage"},  # what is known of the damage
    {"restore"},  # running a network on images (through the Restorer protocol)
    {"hub"},  # saving, loading, cards
    {"model"},  # DCICNN: a network + the Hub + restore
    {"export", "train"},  # what is done with a DCICNN
    {"evaluate"},  # protocols x images x methods
    {"web"},  # the page
]
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name below ``dcicnn`` (``restore.inference``, ``model``), packages'
    ``__init__`` included under the package's name; the root ``__init__`` (lazy re-exports) left out."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",) or "pretrained" in parts or "assets" in parts:
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def internal_imports(path: Path, known: set[str]) -> set[str]:
    """Every dcicnn module ``path`` imports anywhere: at the top, inside functions or under TYPE_CHECKING."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dcicnn"):
            base = node.module.removeprefix("dcicnn").removeprefix(".")
            for alias in node.names:  # `from dcicnn.hub import card` imports the module hub.card
                candidate = f"{base}.{alias.name}" if base else alias.name
                found.add(candidate if candidate in known else base)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("dcicnn.") for a in node.names if a.name.startswith("dcicnn.")}
    return {name for name in found if name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: internal_imports(path, set(found)) - {name} for name, path in found.items()}


def test_every_module_belongs_to_a_layer() -> None:
    missing = sorted(name for name in modules() if name.split(".")[0] not in LAYER_OF)
    assert not missing, f"modules in no layer of LAYERS: {missing}"


def test_imports_flow_down_the_layers() -> None:
    upward = []
    for module, imports in graph().items():
        package = module.split(".")[0]
        for target in imports:
            top = target.split(".")[0]
            shared = LAYER_OF[package] == LAYER_OF.get(top) == 0  # the shared modules may use each other
            if top != package and not shared and LAYER_OF.get(top, -1) >= LAYER_OF[package]:
                upward.append(f"{module} -> {target}")
    assert not upward, f"imports that do not flow down the layers: {upward}"


def test_no_import_cycle_between_modules() -> None:
    dependencies = graph()
    try:
        list(TopologicalSorter(dependencies).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None
    assert dependencies["spec"] <= {"errors"} and dependencies["errors"] == set()


def test_networks_are_pure() -> None:
    """``dcicnn/nn`` is the lowest layer above the shared ones: torch only, nothing else of the package."""
    for module, imports in graph().items():
        if module.split(".")[0] == "nn":
            assert {target.split(".")[0] for target in imports} <= {"nn"}, f"{module} imports {imports}"
