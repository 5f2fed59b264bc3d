"""Population dynamics on a face-off matrix: replicator dynamics (nashpy), rest points and basins.

A population mixes the agents with shares x (on the simplex); A[i][j] is agent i's mean reward
per round against j (the face-off matrix). The replicator dynamics

    dx_i/dt = x_i ((A x)_i − xᵀ A x)

grow the agents that do better than the population's mean. ``rest_points`` are the symmetric
Nash equilibria of (A, Aᵀ) (nashpy's support enumeration), each with its stability: the
eigenvalues of the Jacobian restricted to the simplex (all real parts < 0: asymptotically stable;
some zero: neutral, e.g. two agents that play alike). ``basins`` integrate from ``starts``
uniform random mixtures (drawn from ``seed``) and group where they end by the population's mean
payoff xᵀ A x (bins of 2% of the matrix's range: agents that play alike drift neutrally among
themselves, and every mixture of them is one end state); each group's share of the starts is
its basin, its support the agents above 1% of the group's mean end shares. The basin of cooperation is the share
of starts that end where the population's cooperation xᵀ C x (C: the face-off's cooperation
rates, when the game has them) is at least one half.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SUPPORT = 0.01  # share above which an agent counts as present in an end state


def _game(payoffs: npt.ArrayLike):
    try:
        import nashpy
    except ImportError as error:  # pragma: no cover - the league extra is part of the tests
        raise ImportError("replicator dynamics need the league extra: pip install "
                          "'detente[league]'") from error  # fmt: skip
    a = np.asarray(payoffs, dtype=float)
    return nashpy.Game(a, a.T)


def replicator_velocity(payoffs: npt.ArrayLike, x: npt.ArrayLike) -> np.ndarray:
    """dx/dt = x ∘ (A x − xᵀ A x)."""
    a, x = np.asarray(payoffs, dtype=float), np.asarray(x, dtype=float)
    fitness = a @ x
    return x * (fitness - x @ fitness)


def jacobian(payoffs: npt.ArrayLike, x: npt.ArrayLike) -> np.ndarray:
    """∂f_i/∂x_j = δ_ij ((A x)_i − xᵀ A x) + x_i (A_ij − (Aᵀ x)_j − (A x)_j)."""
    a, x = np.asarray(payoffs, dtype=float), np.asarray(x, dtype=float)
    fitness = a @ x
    mean = x @ fitness
    return np.diag(fitness - mean) + x[:, None] * (a - (a.T @ x)[None, :] - fitness[None, :])


def stability(payoffs: npt.ArrayLike, x: npt.ArrayLike, tol: float = 1e-9) -> str:
    """``stable``, ``neutral`` or ``unstable``: the largest real part of the Jacobian's
    eigenvalues on the simplex's tangent space (vectors summing to 0)."""
    n = len(x)
    if n == 1:
        return "stable"
    basis = np.linalg.qr(np.eye(n) - 1.0 / n)[0][:, : n - 1]  # orthonormal, ⟂ (1, ..., 1)
    largest = max(np.linalg.eigvals(basis.T @ jacobian(payoffs, x) @ basis).real)
    return "stable" if largest < -tol else ("neutral" if largest <= tol else "unstable")


def trajectory(payoffs: npt.ArrayLike, start: npt.ArrayLike, t_max: float = 100.0,
               steps: int = 400) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(times [steps], shares [steps, n]) of the replicator dynamics from ``start``."""
    times = np.linspace(0.0, t_max, steps)
    shares = _game(payoffs).replicator_dynamics(y0=np.asarray(start, float), timepoints=times)
    shares = np.clip(shares, 0.0, None)
    return times, shares / shares.sum(axis=1, keepdims=True)


@dataclass
class RestPoint:
    shares: list[float]
    payoff: float  # xᵀ A x
    stability: str


@dataclass
class Basin:
    support: list[str]
    share_of_starts: float
    end_state: list[float]  # mean end shares of the starts in this basin
    payoff: float
    cooperation: float | None


@dataclass
class Dynamics:
    agents: list[str]
    payoffs: list[list[float]]
    rest_points: list[RestPoint]
    basins: list[Basin]
    starts: int
    t_max: float
    basin_of_cooperation: float | None
    uniform_end: list[float] = field(default_factory=list)  # where the uniform mixture ends

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rest_points(payoffs: npt.ArrayLike) -> list[RestPoint]:
    """Symmetric Nash equilibria of (A, Aᵀ) with their stability under the dynamics: the pure
    ones checked directly (A_ii ≥ A_ji for every j; support enumeration can miss them in
    degenerate games, e.g. two agents that play alike), then nashpy's support enumeration."""
    a = np.asarray(payoffs, dtype=float)
    found: list[np.ndarray] = [
        np.eye(len(a))[i] for i in range(len(a)) if (a[i, i] >= a[:, i] - 1e-12).all()
    ]
    with warnings.catch_warnings():  # degenerate games (agents that play alike) warn
        warnings.simplefilter("ignore")
        for x, y in _game(a).support_enumeration():
            if np.allclose(x, y, atol=1e-9) and not any(np.allclose(x, f) for f in found):
                found.append(np.asarray(x, dtype=float))
    return [RestPoint(x.tolist(), float(x @ a @ x), stability(a, x)) for x in found]


def basins(
    agents: Sequence[str],
    payoffs: npt.ArrayLike,
    cooperation: npt.ArrayLike | None = None,
    starts: int = 200,
    seed: int = 0,
    t_max: float = 200.0,
) -> Dynamics:
    """Rest points, basins of the end states from random starts, and the uniform start's end."""
    a = np.asarray(payoffs, dtype=float)
    c = None if cooperation is None else np.nan_to_num(np.asarray(cooperation, dtype=float))
    n = len(agents)
    if a.shape != (n, n) or not np.isfinite(a).all():
        raise ValueError(f"payoffs must be a finite {n}x{n} matrix")
    rng = np.random.default_rng(seed)
    span = float(a.max() - a.min()) or 1.0
    groups: dict[int, list[np.ndarray]] = {}
    for start in rng.dirichlet(np.ones(n), size=starts):
        end = trajectory(a, start, t_max)[1][-1]
        groups.setdefault(round((end @ a @ end - a.min()) / span * 50), []).append(end)
    found = []
    for _, ends in sorted(groups.items(), key=lambda kv: (-len(kv[1]), -kv[0])):
        mean = np.mean(ends, axis=0)
        support = [i for i in np.argsort(-mean, kind="stable") if mean[i] > SUPPORT]
        found.append(Basin(
            [agents[i] for i in support], len(ends) / starts, mean.tolist(),
            float(np.mean([e @ a @ e for e in ends])),
            None if c is None else float(np.mean([e @ c @ e for e in ends])),
        ))  # fmt: skip
    cooperative = None
    if c is not None:
        cooperative = math.fsum(
            b.share_of_starts for b in found if b.cooperation is not None and b.cooperation >= 0.5
        )
    uniform = trajectory(a, np.full(n, 1.0 / n), t_max)[1][-1]
    return Dynamics(list(agents), a.tolist(), rest_points(a), found, starts, t_max, cooperative,
                    uniform.tolist())  # fmt: skip


def plot_dynamics(
    dynamics: Dynamics, path: Path, title: str, names: dict[str, str] | None = None
) -> Path:
    """Left: shares over time from the uniform mixture. Right: the basins of the end states
    (labelled by their three largest shares). ``names``: short labels of the agents."""
    from detente.evaluate.plots import literal, plt

    names = names or {}
    short = [names.get(agent, agent) for agent in dynamics.agents]
    a = np.asarray(dynamics.payoffs)
    n = len(dynamics.agents)
    times, shares = trajectory(a, np.full(n, 1.0 / n), dynamics.t_max)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for i, label in enumerate(short):
        left.plot(times, shares[:, i], label=literal(label))
    left.set_xlabel("time")
    left.set_ylabel("share of the population")
    left.set_title("from the uniform mixture", fontsize=9)
    left.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    left.grid(alpha=0.3)
    index = {agent: i for i, agent in enumerate(dynamics.agents)}
    labels = [
        literal(" + ".join(short[index[x]] for x in b.support[:3])
                + (" + …" if len(b.support) > 3 else "") + f" (payoff {b.payoff:.2f})")
        for b in dynamics.basins
    ]  # fmt: skip
    right.barh(range(len(labels)), [b.share_of_starts for b in dynamics.basins], color="C2")
    right.set_yticks(range(len(labels)), labels=labels, fontsize=7)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_xlabel(f"share of {dynamics.starts} random starts ending there")
    right.set_title("basins of the end states", fontsize=9)
    fig.suptitle(literal(title), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
