"""PNG plots: training curves and face-off heatmaps (matplotlib, no display needed).

A curve's title says what is plotted and of whom (``ipd · adalign s0: reward per round``);
probabilities and shares are drawn on a fixed [0, 1] axis; reward plots carry the game's
reference lines (mutual cooperation, mutual defection) where its ``GameInfo`` declares them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from detente.games.base import GameInfo  # noqa: E402

# Metric keys worth a curve, in display order (only those present in the metrics are drawn).
CURVE_KEYS = (
    "reward", "collective_reward", "coop_rate", "p_coop_after_c", "p_coop_after_d",
    "claim_upper", "claim_lower", "honesty", "efficiency", "agreement_rate",
    "contribution_rate", "free_ride_rate", "sustainable_rate", "collapse_rate", "invalid_rate",
    "loss", "pg", "kl", "entropy", "grad_norm", "mean_ratio", "tokens_per_s",
)  # fmt: skip


# Readable titles of the metric keys (a key not here is shown as it is).
TITLES = {
    "reward": "reward per round", "collective_reward": "collective reward per round (all players)",
    "opponent_reward": "opponent's reward per round", "coop_rate": "cooperation rate",
    "p_coop_after_c": "P(cooperate | other cooperated)",
    "p_coop_after_d": "P(cooperate | other defected)",
    "claim_upper": "coins claimed with the upper hand", "claim_lower":
    "coins claimed with the lower hand", "honesty": "honest hand reports",
    "efficiency": "efficiency", "agreement_rate": "agreement rate",
    "contribution_rate": "contribution rate (share of the endowment)",
    "free_ride_rate": "free riding (rounds giving nothing)",
    "sustainable_rate": "sustainable requests", "collapse_rate": "collapsed games",
    "invalid_rate": "invalid-reply rate", "constrained_rate": "constrained-reply rate",
    "loss": "loss", "pg": "policy-gradient term", "kl": "KL to the base model",
    "entropy": "entropy", "grad_norm": "gradient norm", "mean_ratio": "mean importance ratio",
    "tokens_per_s": "generated tokens per second",
}  # fmt: skip
# Keys that are probabilities or shares: drawn on a fixed [0, 1] axis.
UNIT_KEYS = frozenset({
    "coop_rate", "p_coop_after_c", "p_coop_after_d", "honesty", "efficiency", "agreement_rate",
    "contribution_rate", "free_ride_rate", "sustainable_rate", "collapse_rate",
    "invalid_rate", "constrained_rate", "clip_fraction",
})  # fmt: skip
UNIT_LIMITS = (-0.02, 1.02)
# Reward keys: one player's reward per round, or (collective) the sum over all players.
REWARD_KEYS = frozenset({"reward", "opponent_reward", "collective_reward"})
# How the reference lines are drawn (colour, line style).
REFERENCE_STYLES = {
    "mutual cooperation": ("tab:green", "--"),
    "mutual defection": ("tab:red", "--"),
}
# Heatmap tick labels longer than this are shortened (``run:`` folders to their last parts,
# then the middle elided).
LABEL_WIDTH = 24


def literal(text: str) -> str:
    """``text`` as matplotlib shows it verbatim: ``$`` would start math mode (and an agent name
    such as ``api:m$x$`` would fail to render)."""
    return str(text).replace("$", r"\$")


def curve_keys(lines: Sequence[dict[str, Any]]) -> list[str]:
    present = {k for line in lines for k, v in line.items() if isinstance(v, int | float)}
    return [k for k in CURVE_KEYS if k in present]


def curve_title(key: str, subject: str | None = None, title: str | None = None) -> str:
    """``SUBJECT: WHAT`` (``ipd · adalign s0: reward per round``); WHAT is ``title`` or the
    key's readable name."""
    what = title or TITLES.get(key, key)
    return f"{subject}: {what}" if subject else what


def reference_lines(info: GameInfo | None, key: str = "reward") -> dict[str, float]:
    """The reference lines of a reward plot, from the game's declaration: ``mutual
    cooperation`` / ``mutual defection`` at each player's reward per round when every player
    cooperates / defects (``players`` times that for the collective reward). Empty for a key
    that is not a reward and for what the game leaves undeclared."""
    if info is None or key not in REWARD_KEYS:
        return {}
    scale = info.players if key == "collective_reward" else 1
    declared = {"mutual cooperation": info.cooperation, "mutual defection": info.defection}
    return {label: scale * v for label, v in declared.items() if v is not None}


def draw_references(ax: Axes, lines: Mapping[str, float]) -> None:
    """Horizontal reference lines, labelled for the legend."""
    for label, value in lines.items():
        colour, style = REFERENCE_STYLES.get(label, ("black", "--"))
        ax.axhline(value, color=colour, linestyle=style, linewidth=1, alpha=0.8, label=label)


def plot_curves(
    runs: dict[str, Sequence[dict[str, Any]]],
    key: str,
    path: Path,
    title: str | None = None,
    *,
    subject: str | None = None,
    info: GameInfo | None = None,
) -> Path:
    """One metric over iterations, one line per run (e.g. per method). ``subject`` (whose
    curves: game, method, seed) heads the title; ``info`` gives a reward plot its game's
    reference lines."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for label, lines in runs.items():
        points = [(line["iteration"], line[key]) for line in lines
                  if isinstance(line.get(key), int | float) and math.isfinite(line[key])]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=literal(label), linewidth=1.6)
    references = reference_lines(info, key)
    draw_references(ax, references)
    ax.set_xlabel("iteration")
    ax.set_ylabel(literal(key))
    ax.set_title(literal(curve_title(key, subject, title)), fontsize=9)
    if key in UNIT_KEYS:
        ax.set_ylim(*UNIT_LIMITS)
    ax.grid(alpha=0.3)
    if len(runs) > 1 or references:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _elide(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters (start and end kept)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def short_labels(names: Sequence[str], width: int = LABEL_WIDTH) -> list[str]:
    """Tick labels of at most ``width`` characters, distinct where the names are: a ``run:``
    agent by the last two parts of its folder (and @ITERATION), any name still too long cut
    in the middle; where that makes two alike, the names' ends, then numbered."""

    def short(name: str) -> str:
        kind, _, argument = name.partition(":")
        if kind == "run" and len(name) > width:
            folder, at, iteration = argument.partition("@")
            name = "/".join(Path(folder).parts[-2:]) + at + iteration
        return _elide(name, width)

    labels = [short(n) for n in names]
    if len(set(labels)) < len(set(names)):
        labels = [n if len(n) <= width else "…" + n[len(n) - width + 1 :] for n in names]
    if len(set(labels)) < len(set(names)):
        labels = [_elide(f"{k + 1}. {n}", width) for k, n in enumerate(names)]
    return labels


def text_colour(rgba: Sequence[float]) -> str:
    """Black on a light cell, white on a dark one (relative luminance)."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def heatmap_figure(
    agents: Sequence[str], values: Sequence[Sequence[float | None]], title: str
) -> Figure:
    """The face-off heatmap's figure: cell (i, j) = the row agent's mean reward per round
    against the column agent, its value written in a colour readable on it. Long names are
    shortened (:func:`short_labels`), x labels rotated, and the figure grows with the number of
    agents and the length of their labels."""
    n = len(agents)
    labels = [literal(a) for a in short_labels(agents)]
    longest = max((len(a) for a in labels), default=0)
    fig, ax = plt.subplots(figsize=(0.9 * n + 0.065 * longest + 2.6, 0.7 * n + 0.05 * longest + 2))
    cells = [[v if v is not None else math.nan for v in row] for row in values]
    image = ax.imshow(cells, cmap="viridis")
    ax.set_xticks(range(n), labels=labels, rotation=45, ha="right", rotation_mode="anchor",
                  fontsize=8)  # fmt: skip
    ax.set_yticks(range(n), labels=labels, fontsize=8)
    for i in range(n):
        for j in range(n):
            v = cells[i][j]
            if math.isfinite(v):
                colour = text_colour(image.cmap(image.norm(v)))
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color=colour, fontsize=8)
            else:
                ax.text(j, i, "–", ha="center", va="center", color="0.5", fontsize=8)
    ax.set_xlabel("column agent (opponent)")
    ax.set_ylabel("row agent")
    ax.set_title(literal(title), fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_heatmap(
    agents: Sequence[str], values: Sequence[Sequence[float | None]], path: Path, title: str
) -> Path:
    """Face-off heatmap (:func:`heatmap_figure`) written to ``path``."""
    fig = heatmap_figure(agents, values, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
