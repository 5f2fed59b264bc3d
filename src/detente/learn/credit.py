"""Per-round credits of an agent i from its advantages and its co-player's (SPEC §2).

``own`` = A^i and ``other`` = A^{−i} are [games, rounds] advantages of the two seats of the same
games (row j of both is game j). Every round-t token the agent generated gets credit C_t.

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

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class CreditMethod(StrEnum):
    """How an agent's credit combines its own and its co-player's advantages."""

    NAIVE = "naive"
    SUM = "sum"
    ADALIGN = "adalign"


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
    method: CreditMethod | str,
    own: npt.ArrayLike,
    other: npt.ArrayLike,
    beta: float,
    gamma: float,
    include_current: bool = False,
    mask: npt.ArrayLike | None = None,
    *,
    leading_gamma: bool | None = None,
) -> FloatArray:
    """Dispatch on ``method`` (a ``CreditMethod`` or its value); β, γ_a, ``include_current`` and
    ``leading_gamma`` are used by Advantage Alignment only."""
    match CreditMethod(method):
        case CreditMethod.NAIVE:
            return naive(own, other, mask)
        case CreditMethod.SUM:
            return sum_of_rewards(own, other, mask)
        case CreditMethod.ADALIGN:
            return advantage_alignment(
                own, other, beta, gamma, include_current, mask, leading_gamma=leading_gamma
            )
