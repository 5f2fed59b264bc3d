"""PNG plots: training curves and face-off heatmaps (matplotlib, no display needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Metric keys worth a curve, in display order (only those present in the metrics are drawn).
CURVE_KEYS = (
    "reward", "collective_reward", "coop_rate", "p_coop_after_c", "p_coop_after_d",
    "claim_upper", "claim_lower", "honesty", "efficiency", "agreement_rate", "invalid_rate",
    "loss", "pg", "kl", "entropy", "grad_norm", "mean_ratio", "tokens_per_s",
)


# Readable titles of the metric keys (a key not here is shown as it is).
TITLES = {
    "reward": "reward per round", "collective_reward": "collective reward per round (both)",
    "opponent_reward": "opponent's reward per round", "coop_rate": "cooperation rate",
    "p_coop_after_c": "P(cooperate | other cooperated)",
    "p_coop_after_d": "P(cooperate | other defected)",
    "claim_upper": "coins claimed with the upper hand", "claim_lower":
    "coins claimed with the lower hand", "honesty": "honest hand reports",
    "efficiency": "efficiency", "agreement_rate": "agreement rate",
    "invalid_rate": "invalid-reply rate", "constrained_rate": "constrained-reply rate",
    "loss": "loss", "pg": "policy-gradient term", "kl": "KL to the base model",
    "entropy": "entropy", "grad_norm": "gradient norm", "mean_ratio": "mean importance ratio",
    "tokens_per_s": "generated tokens per second",
}  # fmt: skip
# Keys that are probabilities or shares: drawn on a fixed [0, 1] axis.
UNIT_KEYS = frozenset({
    "coop_rate", "p_coop_after_c", "p_coop_after_d", "honesty", "efficiency", "agreement_rate",
    "invalid_rate", "constrained_rate", "clip_fraction",
})  # fmt: skip


def literal(text: str) -> str:
    """``text`` as matplotlib shows it verbatim: ``$`` would start math mode (and an agent name
    such as ``api:m$x$`` would fail to render)."""
    return str(text).replace("$", r"\$")


def curve_keys(lines: Sequence[dict[str, Any]]) -> list[str]:
    present = {k for line in lines for k, v in line.items() if isinstance(v, int | float)}
    return [k for k in CURVE_KEYS if k in present]


def plot_curves(
    runs: dict[str, Sequence[dict[str, Any]]], key: str, path: Path, title: str | None = None
) -> Path:
    """One metric over iterations, one line per run (e.g. per method)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for label, lines in runs.items():
        points = [(line["iteration"], line[key]) for line in lines
                  if isinstance(line.get(key), int | float) and math.isfinite(line[key])]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=literal(label), linewidth=1.6)
    ax.set_xlabel("iteration")
    ax.set_ylabel(literal(key))
    ax.set_title(literal(title or TITLES.get(key, key)))
    if key in UNIT_KEYS:
        ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_heatmap(
    agents: Sequence[str], values: Sequence[Sequence[float]], path: Path, title: str
) -> Path:
    """Face-off heatmap: cell (i, j) = row agent's mean reward per round against column agent."""
    n = len(agents)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.0 * n + 1.8))
    image = ax.imshow([[v if v is not None else math.nan for v in row] for row in values],
                      cmap="viridis")
    labels = [literal(a) for a in agents]
    ax.set_xticks(range(n), labels=labels, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=labels, fontsize=8)
    for i in range(n):
        for j in range(n):
            v = values[i][j]
            if v is not None and math.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white", fontsize=8)
    ax.set_xlabel("column agent (opponent)")
    ax.set_ylabel("row agent")
    ax.set_title(literal(title), fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
