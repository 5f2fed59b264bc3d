"""The package's layers, read from the source (nothing is imported): imports go one way.

Every ``import`` under ``src/detente`` counts, inside functions too; imports under
``if TYPE_CHECKING:`` are kept apart (they run for type checkers only). Bottom to top the
layers are: games, protocol, lm, policies, rollout, recipes, config, learn, evaluate, serve, cli.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Imports against the layering that only changes to files this test's author could not change
# would remove: (importing module, imported module or package), matched as prefixes. The graph
# of the layers must be acyclic without them. Remove an entry when its imports go.
KNOWN_BACK_EDGES = {
    # The schema composes option classes declared beside their formulas (learn/credit.py, ...).
    ("detente.config", "detente.learn"): "learn's option classes belong below config",
    # The trainer plays evaluation face-offs while training, and evaluate trains exploiters.
    ("detente.learn.trainer", "detente.evaluate"): "evaluation inside the trainer",
    # ``run:`` agents read a run's config and checkpoints, and the trainer builds agents.
    ("detente.policies.agents", "detente.config"): "agent specs sit above config",
    ("detente.policies.agents", "detente.learn"): "agent specs sit above learn",
}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _known(module: str, target: str) -> bool:
    return any(_within(module, m) and _within(target, t) for m, t in KNOWN_BACK_EDGES)


LM_MAY_NOT_IMPORT = (
    "games", "protocol", "policies", "rollout", "learn", "evaluate", "recipes", "config", "cli",
    "serve",
)  # fmt: skip


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((SRC / "detente").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                inside.update(id(n) for n in ast.walk(statement))
    return inside


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterable[str]:
    """The detente modules an import statement loads (``from p import m`` loads ``p.m``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if MODULES[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    return [name for name in names if name == "detente" or name.startswith("detente.")]


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(imports that run, imports for type checkers only), module -> imported modules."""
    runtime: dict[str, set[str]] = {m: set() for m in MODULES}
    typing: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        checking = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph = typing if id(node) in checking else runtime
                graph[module].update(t for t in _targets(module, node) if t != module)
    return runtime, typing


RUNTIME, TYPING = _graph()


def _layer(module: str) -> str:
    """``detente.lm.models`` -> ``detente.lm``; top-level modules are layers of their own."""
    return ".".join(module.split(".")[:2])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (its nodes, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _where(module: str, target: str) -> str:
    return f"{MODULES[module].relative_to(SRC)} imports {target}"


def test_the_source_is_found():
    assert {"detente.lm.models", "detente.rollout.runner", "detente.cli"} <= set(MODULES)


def test_lm_imports_no_higher_layer():
    forbidden = tuple(f"detente.{name}" for name in LM_MAY_NOT_IMPORT)
    wrong = [
        _where(module, target)
        for module in MODULES
        if _layer(module) == "detente.lm"
        for target in sorted(RUNTIME[module] | TYPING[module])
        if _layer(target) in forbidden
    ]
    assert not wrong, "lm/ is the engines' layer: " + "; ".join(wrong)


def test_no_import_cycle_among_the_rollout_modules():
    rollout = {
        module: {t for t in targets if t.startswith("detente.rollout")}
        for module, targets in RUNTIME.items()
        if module.startswith("detente.rollout")
    }
    assert _cycle(rollout) is None, " -> ".join(_cycle(rollout) or [])


@pytest.mark.parametrize("edge", sorted(KNOWN_BACK_EDGES), ids="->".join)
def test_each_known_back_edge_is_still_there(edge):
    module, target = edge
    assert any(
        _within(m, module) and _within(t, target) for m, targets in RUNTIME.items() for t in targets
    ), f"{module} no longer imports {target}: remove the pair from KNOWN_BACK_EDGES"


def test_the_layers_form_no_cycle():
    layers: dict[str, set[str]] = {}
    for module, targets in RUNTIME.items():
        for target in targets:
            if not _known(module, target) and _layer(module) != _layer(target):
                layers.setdefault(_layer(module), set()).add(_layer(target))
    cycle = _cycle(layers)
    if cycle:
        steps = [
            next(
                _where(m, t)
                for m, targets in sorted(RUNTIME.items())
                for t in sorted(targets)
                if _layer(m) == a and _layer(t) == b and not _known(m, t)
            )
            for a, b in zip(cycle, cycle[1:], strict=False)
        ]
        pytest.fail("import cycle among layers " + " -> ".join(cycle) + ": " + "; ".join(steps))
