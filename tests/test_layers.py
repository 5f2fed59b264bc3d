"""The package's layers, read from the source (nothing is imported): imports go one way.

Every ``import`` under ``src/detente`` counts, inside functions too; imports under
``if TYPE_CHECKING:`` are kept apart (they run for type checkers only). Each layer imports only
layers below it in ``LAYERS``: there is no import circle and no allowance for one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom to top: a package (``detente/NAME/``) or a top-level module (``detente/NAME.py``) may
# import only the layers before it. A new package or top-level module takes its place here.
LAYERS = (
    "suggest",  # did-you-mean for error messages
    "environ",  # environment variables set for a while
    "lm",  # engines, tokenizers, the model registry; no game code
    "games",  # rules and the game registry
    "protocol",  # the games as text
    "policies",  # bots, the LM policy, API, human
    "rollout",  # batched play, records, replicas and workers
    "learn",  # the formulas: returns, baselines, credits, batches, loss, scoring, checkpoints
    "recipes",  # the persona warm start, the embedded models
    "config",  # the run schema and presets
    "agents",  # agent specs: bot:, lm:, run:, api:, human
    "evaluate",  # measurement: face-offs, metrics, statistics, reports, ratings
    "train",  # the driver: the trainer, its trackers, data-parallel learners
    "studies",  # the demo, learned exploiters, the league
    "interop",  # PettingZoo environments
    "chat_replay",  # a chat's transcript replayed as games
    "serve",  # the HTTP server
    "cli",
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


def _rank(module: str) -> int:
    return LAYERS.index(_layer(module).removeprefix("detente."))


def test_the_source_is_found():
    assert {"detente.lm.models", "detente.rollout.runner", "detente.cli"} <= set(MODULES)


def test_every_layer_has_its_place():
    layers = {_layer(module).removeprefix("detente.") for module in MODULES if module != "detente"}
    assert layers - set(LAYERS) == set(), "place these in LAYERS"
    assert set(LAYERS) - layers == set(), "LAYERS names these, the source has them not"


def test_each_layer_imports_only_layers_below_it():
    wrong = [
        _where(module, target)
        for module, targets in sorted(RUNTIME.items())
        if module != "detente"
        for target in sorted(targets)
        if _layer(target) != _layer(module) and _rank(target) > _rank(module)
    ]
    assert not wrong, "imports of a higher layer: " + "; ".join(wrong)


def test_no_layer_imports_a_higher_one_even_for_type_checkers():
    """A type named across layers is a dependency too: a lower layer declares the structural
    ``Protocol`` it reads instead (e.g. ``rollout.workers.Placement``)."""
    wrong = [
        _where(module, target)
        for module in MODULES
        if module != "detente"
        for target in sorted(TYPING[module])
        if _layer(target) != _layer(module) and _rank(target) > _rank(module)
    ]
    assert not wrong, "type-checking imports of a higher layer: " + "; ".join(wrong)


def test_no_import_cycle_among_the_rollout_modules():
    rollout = {
        module: {t for t in targets if t.startswith("detente.rollout")}
        for module, targets in RUNTIME.items()
        if module.startswith("detente.rollout")
    }
    assert _cycle(rollout) is None, " -> ".join(_cycle(rollout) or [])


def test_the_layers_form_no_cycle():
    layers: dict[str, set[str]] = {}
    for module, targets in RUNTIME.items():
        for target in targets:
            if _layer(module) != _layer(target):
                layers.setdefault(_layer(module), set()).add(_layer(target))
    cycle = _cycle(layers)
    if cycle:
        steps = [
            next(
                _where(m, t)
                for m, targets in sorted(RUNTIME.items())
                for t in sorted(targets)
                if _layer(m) == a and _layer(t) == b
            )
            for a, b in zip(cycle, cycle[1:], strict=False)
        ]
        pytest.fail("import cycle among layers " + " -> ".join(cycle) + ": " + "; ".join(steps))
