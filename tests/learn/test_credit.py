"""Credits against literal loops over the SPEC §2 formulas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detente.learn.credit import (
    CreditMethod,
    CreditOptions,
    advantage_alignment,
    alignment_weights,
    compute_credit,
    naive,
    sum_of_rewards,
)


def brute_adalign(
    own: np.ndarray,
    other: np.ndarray,
    beta: float,
    gamma: float,
    include_current: bool,
    leading_gamma: bool | None = None,
) -> np.ndarray:
    """C_t = A^i_t + β A^{−i}_t γ^ℓ Σ_{k<t (or ≤t)} γ^{t−k} A^i_k, as a double loop; ℓ = 1 if
    ``leading_gamma``, 0 if not, and when None 1 for k < t, 0 for k ≤ t (the authors' code)."""
    games, horizon = own.shape
    lead = (not include_current) if leading_gamma is None else leading_gamma
    out = np.zeros_like(own)
    for j in range(games):
        for t in range(horizon):
            last = t + 1 if include_current else t
            w = (gamma if lead else 1.0) * sum(gamma ** (t - k) * own[j, k] for k in range(last))
            out[j, t] = own[j, t] + beta * other[j, t] * w
    return out


advantage_pairs = st.tuples(st.integers(1, 5), st.integers(1, 8), st.integers(0, 2**32 - 1)).map(
    lambda a: tuple(np.random.default_rng(a[2]).normal(size=(2, a[0], a[1])))
)


@settings(max_examples=40, deadline=None)
@given(pair=advantage_pairs)
def test_naive_and_sum_match_loop(pair: tuple[np.ndarray, np.ndarray]) -> None:
    own, other = pair
    expected_sum = np.array(
        [[own[j, t] + other[j, t] for t in range(own.shape[1])] for j in range(own.shape[0])]
    )
    np.testing.assert_array_equal(naive(own, other), own)
    np.testing.assert_allclose(sum_of_rewards(own, other), expected_sum, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(
    pair=advantage_pairs,
    beta=st.floats(0.0, 3.0),
    gamma=st.floats(0.0, 1.0),
    include_current=st.booleans(),
    leading_gamma=st.sampled_from([None, True, False]),
)
def test_advantage_alignment_matches_double_loop(
    pair: tuple[np.ndarray, np.ndarray],
    beta: float,
    gamma: float,
    include_current: bool,
    leading_gamma: bool | None,
) -> None:
    own, other = pair
    got = advantage_alignment(
        own, other, beta, gamma, include_current, leading_gamma=leading_gamma
    )
    expected = brute_adalign(own, other, beta, gamma, include_current, leading_gamma)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_alignment_weights_first_round_and_leading_gamma() -> None:
    own = np.array([[2.0, 1.0, 4.0]])
    gamma = 0.5
    w = alignment_weights(own, gamma)
    assert w[0, 0] == 0.0  # W_0 = 0
    # W_1 = γ·γ·A_0, W_2 = γ(γ² A_0 + γ A_1): the explicit leading γ_a of the authors' code
    np.testing.assert_allclose(w, [[0.0, 0.5, 0.5]])
    w_jit = alignment_weights(own, gamma, include_current=True)
    np.testing.assert_allclose(w_jit, [[2.0, 2.0, 5.0]])  # Σ_{k≤t} γ^{t−k} A_k: no leading γ
    w_jit_lead = alignment_weights(own, gamma, include_current=True, leading_gamma=True)
    np.testing.assert_allclose(w_jit_lead, [[1.0, 1.0, 2.5]])  # γ Σ_{k≤t} γ^{t−k} A_k
    w_plain = alignment_weights(own, gamma, leading_gamma=False)
    np.testing.assert_allclose(w_plain, [[0.0, 1.0, 1.0]])  # Σ_{k<t} γ^{t−k} A_k
    np.testing.assert_array_equal(alignment_weights(own, gamma, leading_gamma=True), w)
    credits = advantage_alignment(own, np.ones_like(own), 1.0, gamma)
    assert credits[0, 0] == own[0, 0]  # no alignment term in the first round


def test_advantage_alignment_with_zero_beta_is_naive() -> None:
    own, other = np.random.default_rng(0).normal(size=(2, 6, 5))
    np.testing.assert_allclose(advantage_alignment(own, other, 0.0, 0.9), naive(own, other))


@pytest.mark.parametrize("include_current", [False, True])
def test_mask_zeroes_absent_rounds(include_current: bool) -> None:
    rng = np.random.default_rng(4)
    own, other = rng.normal(size=(2, 6, 7))
    lengths = np.array([7, 1, 3, 5, 7, 2])
    mask = np.arange(7)[None, :] < lengths[:, None]
    own_padded = np.where(mask, own, 99.0)  # padding must not leak into W or the credits
    other_padded = np.where(mask, other, -99.0)
    for method in CreditMethod:
        got = compute_credit(options(method, include_current), own_padded, other_padded, mask)
        assert np.all(got[~mask] == 0.0)
        for j, n in enumerate(lengths):  # each game equals the same game without padding
            alone = compute_credit(
                options(method, include_current), own[j : j + 1, :n], other[j : j + 1, :n]
            )
            np.testing.assert_allclose(got[j, :n], alone[0], atol=1e-12)


def options(method: CreditMethod, include_current: bool) -> CreditOptions:
    return CreditOptions(method=method, beta=0.7, gamma_a=0.9, include_current=include_current)


def test_compute_credit_dispatches_by_value() -> None:
    own, other = np.random.default_rng(5).normal(size=(2, 3, 4))
    def credit(method: str, **extra: object) -> np.ndarray:
        options = CreditOptions(method=method, beta=0.5, gamma_a=0.9, **extra)
        return compute_credit(options, own, other)

    np.testing.assert_array_equal(credit("naive"), own)
    np.testing.assert_array_equal(credit("sum"), own + other)
    np.testing.assert_array_equal(
        credit("adalign", include_current=True),
        advantage_alignment(own, other, 0.5, 0.9, True),
    )
    np.testing.assert_allclose(
        credit("adalign", include_current=True, leading_gamma=True),
        brute_adalign(own, other, 0.5, 0.9, True, True),
        atol=1e-12,
    )
    assert [m.value for m in CreditMethod] == ["naive", "sum", "adalign"]
    with pytest.raises(ValueError):
        credit("greedy")


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        sum_of_rewards(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError):
        naive(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError):
        advantage_alignment(np.zeros((2, 3)), np.zeros((2, 3)), 1.0, 0.9, mask=np.ones((3, 2)))
