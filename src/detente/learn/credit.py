"""Per-round credits of an agent i from its advantages and its co-players' (SPEC §2).

``own`` = A^i and ``other`` = A^{−i} are [games, rounds] advantages of seat i and of its
co-players in the same games (row j of both is game j). With N players, A^{−i} combines the
co-players' advantages (:func:`combine_co_players`): their sum Σ_{j≠i} A^j (the N-agent
Advantage Alignment of Duque et al.), or their mean (1/(N−1)) Σ_{j≠i} A^j, so that β means the
same at any N; with two players both are A^j of the one co-player. Every round-t token the agent
generated gets credit C_t.

- naive:               C_t = A^i_t
- sum of rewards:      C_t = A^i_t + A^{−i}_t
- Advantage Alignment: C_t = A^i_t + β · A^{−i}_t · W_t,
  W_t = γ_a^ℓ · Σ_{k<t} γ_a^{t−k} A^i_k   (W_0 = 0),
  or, in the just-in-time variant (``include_current``), W_t = γ_a^ℓ · Σ_{k≤t} γ_a^{t−k} A^i_k.
  ℓ ∈ {0, 1} is the leading factor (``leading_gamma``; equivalent to rescaling β by γ_a). Its
  default (None) is what the authors' code does: ℓ = 1 for k < t, ℓ = 0 for k ≤ t.

An optional ``mask`` [games, rounds] (1 where the round exists) zeroes absent rounds: they add
nothing to W and get credit 0.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

FloatArray = npt.NDArray[np.float64]


class CreditMethod(StrEnum):
    """How an agent's credit combines its own and its co-players' advantages."""

    NAIVE = "naive"
    SUM = "sum"
    ADALIGN = "adalign"


class CoPlayers(StrEnum):
    """How the co-players' advantages (and mixed-in rewards) are combined: sum or mean."""

    SUM = "sum"
    MEAN = "mean"


class CreditOptions(BaseModel):
    """Everything the credit of a learner seat depends on, declared once (the run config's
    ``train`` section extends it; the formulas receive it whole)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    method: CreditMethod = Field(CreditMethod.ADALIGN, description="naive | sum | adalign.")
    ignore_groups: bool = Field(
        False,
        description="Ablation: ignore seed groups; leave-one-out per seat position over the batch.",
    )
    gamma: float = Field(0.96, ge=0, le=1, description="Discount of reward-to-go.")
    beta: float = Field(1.0, ge=0, description="Advantage Alignment strength β.")
    gamma_a: float = Field(0.9, ge=0, le=1, description="Advantage Alignment discount γ_a.")
    include_current: bool = Field(False, description="Just-in-time variant (k ≤ t in W_t).")
    leading_gamma: bool | None = Field(
        None,
        description="Leading factor of W_t = γ_a^ℓ Σ_k γ_a^{t−k} A_k (k < t, or k ≤ t with "
        "include_current): true ℓ = 1, false ℓ = 0. None = the authors' code: ℓ = 1 for k < t, "
        "ℓ = 0 for k ≤ t.",
    )
    co_players: CoPlayers = Field(
        CoPlayers.SUM,
        description="N players: combine the co-players' advantages (and the w_other rewards) by "
        "their sum Σ_{j≠i} (the N-agent Advantage Alignment) or their mean (1/(N−1)) Σ_{j≠i} "
        "(β then means the same at any N). Two players: the same.",
    )
    reward_scale: float | None = Field(
        None, gt=0, description="Divide rewards by this; None = the game's own scale."
    )
    reward_weights: tuple[float, float] = Field(
        (1.0, 0.0),
        description="[w_self, w_other]: the learner is trained on r̃_t = w_self · r_t + w_other · "
        "r^{-i}_t (its own reward and its co-players', combined as co_players says), mixed "
        "before the returns. [1, 0] the game's reward; [0, -1] spite; [1, -1] margin; [1, 1] the "
        "sum of rewards. Only with method=naive (sum and adalign shape the credit with the "
        "co-players' advantages).",
    )

    @model_validator(mode="after")
    def _reward_weights_with_naive(self) -> Self:
        weights = tuple(self.reward_weights)
        if weights == (0.0, 0.0):
            raise ValueError("reward_weights=[0, 0] leaves the learner no reward")
        if weights != (1.0, 0.0) and self.method is not CreditMethod.NAIVE:
            raise ValueError(
                f"reward_weights={list(weights)} mixes rewards for method=naive only; "
                f"method={self.method.value} already uses the co-players' advantages"
            )
        return self


def combine_co_players(
    values: npt.ArrayLike, owner: npt.ArrayLike, rows: int, how: CoPlayers | str
) -> FloatArray:
    """Per owner row i: Σ_{j≠i} x^j (``sum``) or (1/(N−1)) Σ_{j≠i} x^j (``mean``).

    ``values`` is [co-rows, T], one row per (learner row, co-player) pair; ``owner`` [co-rows]
    the learner row each belongs to (0..rows−1). Returns [rows, T]; a row without co-players
    is 0.
    """
    x = np.asarray(values, dtype=np.float64)
    index = np.asarray(owner, dtype=np.int64)
    total = np.zeros((rows, *x.shape[1:]), dtype=np.float64)
    np.add.at(total, index, x)
    if CoPlayers(how) is CoPlayers.SUM:
        return total
    counts = np.bincount(index, minlength=rows).astype(np.float64)
    shape = (rows,) + (1,) * (x.ndim - 1)
    return np.divide(
        total, counts.reshape(shape), out=np.zeros_like(total), where=counts.reshape(shape) > 0
    )


def _prepare(
    own: npt.ArrayLike, other: npt.ArrayLike, mask: npt.ArrayLike | None
) -> tuple[FloatArray, FloatArray]:
    """Float64 copies of own/other with absent rounds (mask 0) zeroed; checks shapes."""
    a_own = np.asarray(own, dtype=np.float64)
    a_other = np.asarray(other, dtype=np.float64)
    if a_own.ndim != 2 or a_own.shape != a_other.shape:
        raise ValueError(f"own {a_own.shape} and other {a_other.shape} must be equal [games, T]")
    m = np.ones_like(a_own) if mask is None else np.asarray(mask, dtype=np.float64)
    if m.shape != a_own.shape:
        raise ValueError(f"mask shape {m.shape} != advantages shape {a_own.shape}")
    return np.where(m > 0, a_own, 0.0), np.where(m > 0, a_other, 0.0)


def naive(
    own: npt.ArrayLike, other: npt.ArrayLike, mask: npt.ArrayLike | None = None
) -> FloatArray:
    """C_t = A^i_t (``other`` is accepted for a uniform signature and ignored)."""
    a_own, _ = _prepare(own, other, mask)
    return a_own


def sum_of_rewards(
    own: npt.ArrayLike, other: npt.ArrayLike, mask: npt.ArrayLike | None = None
) -> FloatArray:
    """C_t = A^i_t + A^{−i}_t (prosocial reference)."""
    a_own, a_other = _prepare(own, other, mask)
    return a_own + a_other


def leading_factor(gamma: float, include_current: bool, leading_gamma: bool | None) -> float:
    """γ^ℓ, the leading factor of W_t: ℓ = 1 if ``leading_gamma`` else 0; ``leading_gamma`` None
    takes the authors' choice, ℓ = 1 for the k < t sum and ℓ = 0 for the k ≤ t sum."""
    on = not include_current if leading_gamma is None else leading_gamma
    return gamma if on else 1.0


def alignment_weights(
    own: npt.ArrayLike,
    gamma: float,
    include_current: bool = False,
    mask: npt.ArrayLike | None = None,
    *,
    leading_gamma: bool | None = None,
) -> FloatArray:
    """W_t = γ^ℓ · Σ_{k<t} γ^{t−k} A_k  (k ≤ t if ``include_current``), linear time.

    γ^ℓ from ``leading_factor`` (default: γ for k < t, 1 for k ≤ t). Recurrence on
    S_t = Σ_{k<t} γ^{t−k} A_k:  S_0 = 0,  S_{t+1} = γ (S_t + A_t); then W_t = γ^ℓ S_t, or
    γ^ℓ (S_t + A_t) for the just-in-time variant. Rounds with mask 0 contribute A = 0.
    """
    a_own, _ = _prepare(own, own, mask)
    lead = leading_factor(gamma, include_current, leading_gamma)
    weights = np.empty_like(a_own)
    s = np.zeros(a_own.shape[0], dtype=np.float64)
    for t in range(a_own.shape[1]):
        weights[:, t] = lead * (s + a_own[:, t]) if include_current else lead * s
        s = gamma * (s + a_own[:, t])
    return weights


def advantage_alignment(
    own: npt.ArrayLike,
    other: npt.ArrayLike,
    beta: float,
    gamma: float,
    include_current: bool = False,
    mask: npt.ArrayLike | None = None,
    *,
    leading_gamma: bool | None = None,
) -> FloatArray:
    """C_t = A^i_t + β · A^{−i}_t · W_t with W_t from ``alignment_weights`` (γ = γ_a)."""
    a_own, a_other = _prepare(own, other, mask)  # absent rounds are 0 in both, hence in C
    weights = alignment_weights(a_own, gamma, include_current, leading_gamma=leading_gamma)
    return a_own + beta * a_other * weights


def compute_credit(
    options: CreditOptions,
    own: npt.ArrayLike,
    other: npt.ArrayLike,
    mask: npt.ArrayLike | None = None,
) -> FloatArray:
    """The credit of ``options.method``; β, γ_a, ``include_current`` and ``leading_gamma`` are
    used by Advantage Alignment only."""
    match options.method:
        case CreditMethod.NAIVE:
            return naive(own, other, mask)
        case CreditMethod.SUM:
            return sum_of_rewards(own, other, mask)
        case CreditMethod.ADALIGN:
            return advantage_alignment(
                own,
                other,
                options.beta,
                options.gamma_a,
                options.include_current,
                mask,
                leading_gamma=options.leading_gamma,
            )
