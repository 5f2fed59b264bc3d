"""Cross-play: do agents trained in independent runs (other seeds, other methods) still get
along?

Each agent gets a group (a run: its credit method; any other agent: its spec) and a lineage (a
run: its resolved directory, so a run's snapshots are one lineage; any other agent: itself).
From a face-off matrix, cell (A, B) of the cross-play matrix averages the row agent's cells over
the pairs of an agent of group A and one of group B from *different* lineages, so (A, A) is A's
cross-seed play; ``self_play`` averages A's diagonal (each agent with itself). The same is done
for the face-off's behaviour measures (IPD: cooperation rate, P(C | other C), P(C | other D)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from detente.evaluate.faceoff import FaceoffResult


@dataclass(frozen=True)
class Label:
    group: str
    lineage: str
    seed: int | None = None


def agent_label(spec: str) -> Label:
    """A run's method and seed (from its config.yaml), or the spec itself."""
    kind, _, argument = spec.partition(":")
    if kind != "run":
        return Label(spec, spec)
    from detente.config import read_yaml, validate

    run_dir = Path(argument.partition("@")[0])
    config = validate(read_yaml(run_dir / "config.yaml"))
    return Label(config.train.method.value, str(run_dir.resolve()), config.seed)


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return math.fsum(finite) / len(finite) if finite else None


@dataclass
class CrossPlay:
    groups: list[str]
    members: dict[str, list[str]]
    reward: list[list[float | None]]  # group x group, cells of different lineages only
    self_play: dict[str, float | None]
    measures: dict[str, list[list[float | None]]]
    self_measures: dict[str, dict[str, float | None]]
    lineages: dict[str, int]  # per group: independent runs (or distinct agents) in it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def independent(self) -> list[dict[str, Any]]:
        """Per group with agents of two lineages or more: its cross-lineage numbers beside its
        self-play (does it still cooperate with itself trained again?)."""
        out = []
        for k, group in enumerate(self.groups):
            if self.lineages[group] < 2 or self.reward[k][k] is None:
                continue
            row: dict[str, Any] = {"group": group, "runs": self.lineages[group],
                                   "cross_reward": self.reward[k][k],
                                   "self_reward": self.self_play[group]}  # fmt: skip
            for name, matrix in self.measures.items():
                row[f"cross_{name}"] = matrix[k][k]
                row[f"self_{name}"] = self.self_measures[group][name]
            out.append(row)
        return out


def cross_play(result: FaceoffResult, labels: dict[str, Label]) -> CrossPlay:
    """The cross-play matrix of a face-off, grouping its agents by ``labels``."""
    agents = result.agents
    groups = list(dict.fromkeys(labels[a].group for a in agents))
    members = {g: [a for a in agents if labels[a].group == g] for g in groups}
    index = {a: i for i, a in enumerate(agents)}

    def block(matrix: list[list[float]], ga: str, gb: str) -> float | None:
        return _mean([
            matrix[index[a]][index[b]]
            for a in members[ga] for b in members[gb] if labels[a].lineage != labels[b].lineage
        ])  # fmt: skip

    def diagonal(matrix: list[list[float]], g: str) -> float | None:
        return _mean([matrix[index[a]][index[a]] for a in members[g]])

    matrices = {"reward": result.mean_reward, **result.measures}
    tables = {k: [[block(m, a, b) for b in groups] for a in groups] for k, m in matrices.items()}
    selfs = {k: {g: diagonal(m, g) for g in groups} for k, m in matrices.items()}
    return CrossPlay(
        groups, members, tables.pop("reward"), selfs.pop("reward"), tables,
        {g: {k: selfs[k][g] for k in selfs} for g in groups},
        {g: len({labels[a].lineage for a in members[g]}) for g in groups},
    )
