"""The package's shape, as DESIGN.md states it: no learner imports another learner (only the shared trainer
module), no consumer imports a learner, and no two modules import each other (at any depth in the file,
deferred imports included). Read from the source with ast, so a new violation fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rewardlab"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every rewardlab module a file imports (``from a import b`` counts a.b when a.b is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rewardlab")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rewardlab") and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
    return found & MODULES.keys() - {module_name(path)}


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_no_learner_imports_another_learner_only_the_shared_trainer():
    learners = {m for m in MODULES if m.startswith("rewardlab.learners.")}
    for name in learners:
        siblings = GRAPH[name] & learners - {"rewardlab.learners._trainer"}
        assert not siblings, f"{name} imports {sorted(siblings)}"


@pytest.mark.parametrize("consumer", ["rewardlab.serve", "rewardlab.rlhf", "rewardlab.imitation"])
def test_consumers_import_no_learner(consumer):
    for name in (m for m in MODULES if m == consumer or m.startswith(consumer + ".")):
        bad = {m for m in GRAPH[name] if m == "rewardlab.learners" or m.startswith("rewardlab.learners.")}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_no_two_modules_import_each_other():
    cycles = sorted({tuple(sorted((a, b))) for a, deps in GRAPH.items() for b in deps if a in GRAPH.get(b, set())
                     # a package's __init__ re-exporting its own submodule is how packages work, not a cycle
                     and not (b.startswith(a + ".") or a.startswith(b + "."))})
    assert not cycles, cycles
