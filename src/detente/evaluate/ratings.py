"""Ratings from face-off games: openskill's Weng-Lin Bayesian ratings (Plackett-Luce model).

Every game between two different agents is one rated match: the seat with the larger total
reward ranks first (equal totals: a draw). Games are rated one after another in an order drawn
from ``seed`` (online ratings depend on the order; the seed makes it reproducible). A rating is
(μ, σ); agents are ranked by the conservative ``ordinal`` μ − 3σ. Note what a "win" is in a
general-sum game: out-scoring the co-player, which in the IPD a defector never fails to do
against a cooperator, so the rating measures relative, not absolute, payoff (the face-off
matrix has the absolute one).

``snapshot_specs(run_dir)`` names a run's adapters by iteration (pool snapshots and kept
checkpoints), so a run's rating can be shown per iteration among bots and other agents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detente.agents import run_adapters
from detente.rollout.records import GameRecord


@dataclass
class Rating:
    agent: str
    mu: float
    sigma: float
    ordinal: float  # mu - 3 sigma
    games: int
    wins: int
    draws: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rate_games(records: Sequence[GameRecord], seed: int = 0) -> list[Rating]:
    """Ratings of every agent of ``records`` (self-play games are not rated), best first."""
    from openskill.models import PlackettLuce

    model = PlackettLuce()
    agents = sorted({seat.agent for record in records for seat in record.seats})
    ratings = {a: model.rating(name=a) for a in agents}
    games, wins, draws = dict.fromkeys(agents, 0), dict.fromkeys(agents, 0), dict.fromkeys(agents, 0)
    order = np.random.default_rng(seed).permutation(len(records))
    for index in order:
        record = records[int(index)]
        a, b = (seat.agent for seat in record.seats)
        if a == b:
            continue
        totals = [math.fsum(record.seat_rewards(p)) for p in (0, 1)]
        [[ratings[a]], [ratings[b]]] = model.rate([[ratings[a]], [ratings[b]]], scores=totals)
        games[a] += 1
        games[b] += 1
        if totals[0] == totals[1]:
            draws[a] += 1
            draws[b] += 1
        else:
            wins[a if totals[0] > totals[1] else b] += 1
    out = [
        Rating(a, r.mu, r.sigma, r.ordinal(), games[a], wins[a], draws[a])
        for a, r in ratings.items()
    ]
    return sorted(out, key=lambda r: (-r.ordinal, r.agent))


def snapshot_specs(run_dir: Path) -> dict[int, str]:
    """``run:RUN_DIR@ITERATION`` of every adapter a run keeps, by iteration."""
    return {i: f"run:{run_dir}@{i}" for i in sorted(run_adapters(run_dir))}


def per_iteration(ratings: Sequence[Rating], snapshots: dict[int, str]) -> list[dict[str, Any]]:
    """The ratings of a run's snapshots, in iteration order."""
    by_agent = {r.agent: r for r in ratings}
    return [
        {"iteration": i, **by_agent[spec].to_json()}
        for i, spec in sorted(snapshots.items())
        if spec in by_agent
    ]


def plot_ratings(
    runs: dict[str, list[dict[str, Any]]], others: Sequence[Rating], path: Path, title: str
) -> Path:
    """Each run's ordinal per iteration (μ ± σ shaded); other agents as horizontal lines."""
    from detente.evaluate.plots import literal, plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for label, points in runs.items():
        if not points:
            continue
        xs = [p["iteration"] for p in points]
        ax.plot(xs, [p["ordinal"] for p in points], marker="o", label=literal(label))
        ax.fill_between(xs, [p["mu"] - p["sigma"] for p in points],
                        [p["mu"] + p["sigma"] for p in points], alpha=0.15)  # fmt: skip
    for k, rating in enumerate(others):
        ax.axhline(rating.ordinal, linestyle="--", linewidth=1, color=f"C{(k + len(runs)) % 10}",
                   label=literal(rating.agent))  # fmt: skip
    ax.set_xlabel("iteration")
    ax.set_ylabel("rating (μ − 3σ; band μ ± σ)")
    ax.set_title(literal(title), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
