"""Returns and leave-one-out baselines against brute-force loops over the SPEC §2 formulas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detente.learn.advantages import discounted_returns, group_loo


def brute_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = Σ_{s≥t} γ^{s−t} r_s, literally, for every leading index."""
    out = np.zeros_like(rewards, dtype=np.float64)
    for idx in np.ndindex(rewards.shape[:-1]):
        horizon = rewards.shape[-1]
        for t in range(horizon):
            out[idx + (t,)] = sum(gamma ** (s - t) * rewards[idx + (s,)] for s in range(t, horizon))
    return out


def brute_loo(
    returns: np.ndarray,
    groups: list[int],
    mask: np.ndarray,
    whole_batch: bool,
    seats: list[int] | None = None,
) -> np.ndarray:
    """A^j_t = G^j_t − mean of G^{j'}_t over the other rows of j's seat position that have round
    t and, unless ``whole_batch``, belong to j's group."""
    games, horizon = returns.shape
    seat = seats or [0] * games
    out = np.zeros_like(returns)
    for j in range(games):
        for t in range(horizon):
            if not mask[j, t]:
                continue
            peers = [
                returns[k, t]
                for k in range(games)
                if k != j
                and mask[k, t]
                and seat[k] == seat[j]
                and (whole_batch or groups[k] == groups[j])
            ]
            out[j, t] = returns[j, t] - (sum(peers) / len(peers) if peers else 0.0)
    return out


@settings(max_examples=50, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    gamma=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_discounted_returns_matches_loop(shape: list[int], gamma: float, seed: int) -> None:
    rewards = np.random.default_rng(seed).normal(size=shape)
    got = discounted_returns(rewards, gamma)
    assert got.dtype == np.float64 and got.shape == rewards.shape
    np.testing.assert_allclose(got, brute_returns(rewards, gamma), rtol=1e-12, atol=1e-12)


def test_discounted_returns_edge_discounts() -> None:
    rewards = np.arange(1.0, 6.0)
    np.testing.assert_allclose(discounted_returns(rewards, 0.0), rewards)
    np.testing.assert_allclose(discounted_returns(rewards, 1.0), [15, 14, 12, 9, 5])
    # the caller divides by the reward scale; returns are linear in the rewards
    np.testing.assert_allclose(
        discounted_returns(rewards / 5, 0.9), discounted_returns(rewards, 0.9) / 5
    )


@pytest.mark.parametrize(("games", "group_size", "horizon"), [(64, 8, 10), (12, 4, 3), (6, 2, 1)])
def test_group_loo_seed_groups(games: int, group_size: int, horizon: int) -> None:
    rng = np.random.default_rng(games)
    returns = rng.normal(size=(games, horizon))
    groups = rng.permutation(np.repeat(np.arange(games // group_size) * 7 + 3, group_size))
    got = group_loo(returns, groups)
    expected = brute_loo(returns, list(groups), np.ones_like(returns, dtype=bool), False)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    for g in np.unique(groups):  # leave-one-out advantages of a full group sum to zero
        np.testing.assert_allclose(got[groups == g].sum(axis=0), 0.0, atol=1e-10)


def test_group_loo_unequal_group_sizes() -> None:
    rng = np.random.default_rng(1)
    returns = rng.normal(size=(7, 4))
    groups = [0, 0, 0, 0, 5, 5, 5]
    expected = brute_loo(returns, groups, np.ones((7, 4), dtype=bool), False)
    np.testing.assert_allclose(group_loo(returns, groups), expected, atol=1e-12)


def test_group_loo_all_singletons_use_whole_batch() -> None:
    rng = np.random.default_rng(2)
    returns = rng.normal(size=(128, 10))
    got = group_loo(returns, np.arange(128))
    expected = brute_loo(returns, list(range(128)), np.ones((128, 10), dtype=bool), True)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert not np.allclose(got, returns)


def test_group_loo_singleton_groups_pool_per_seat_position() -> None:
    """K = 1 in self-play: rows (game, Alice) and (game, Bob) share a group id; each seat
    position is pooled over the batch, never with the other seat (SPEC §2)."""
    rng = np.random.default_rng(5)
    returns = rng.normal(size=(2 * 16, 4))
    groups = np.repeat(np.arange(16), 2)
    seats = np.tile([0, 1], 16)
    got = group_loo(returns, groups, seats)
    expected = brute_loo(returns, list(groups), np.ones((32, 4), dtype=bool), True, list(seats))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    bob_changed = returns.copy()
    bob_changed[seats == 1] += rng.normal(size=(16, 4))
    np.testing.assert_array_equal(
        group_loo(bob_changed, groups, seats)[seats == 0], got[seats == 0]
    )


@pytest.mark.parametrize("seats", [[0, 1, 0, 1, 0, 1], [0, 0, 1, 1, 1, 0]])
def test_group_loo_ignore_groups_pools_per_seat_position(seats: list[int]) -> None:
    returns = np.random.default_rng(6).normal(size=(6, 3))
    groups = [0, 0, 0, 1, 1, 1]
    got = group_loo(returns, groups, seats, ignore_groups=True)
    expected = brute_loo(returns, groups, np.ones((6, 3), dtype=bool), True, seats)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_group_loo_seed_groups_split_by_seat_position() -> None:
    returns = np.random.default_rng(7).normal(size=(8, 3))
    groups, seats = [0, 0, 0, 0, 1, 1, 1, 1], [0, 1, 0, 1, 0, 0, 1, 1]
    got = group_loo(returns, groups, seats)
    expected = brute_loo(returns, groups, np.ones((8, 3), dtype=bool), False, seats)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_group_loo_single_game_has_no_baseline() -> None:
    returns = np.array([[1.5, -2.0, 0.25]])
    np.testing.assert_array_equal(group_loo(returns, [4]), returns)


def test_group_loo_mixed_sizes_raise() -> None:
    with pytest.raises(ValueError, match="mixed"):
        group_loo(np.zeros((5, 3)), [0, 0, 1, 1, 2])


@pytest.mark.parametrize("groups", [[0, 0, 1, 1, 2], [0, 0, 0, 1, 1], [0, 1, 2, 3, 4]])
def test_group_loo_ignore_groups(groups: list[int]) -> None:
    returns = np.random.default_rng(3).normal(size=(5, 3))
    got = group_loo(returns, groups, ignore_groups=True)
    expected = brute_loo(returns, groups, np.ones((5, 3), dtype=bool), True)
    np.testing.assert_allclose(got, expected, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    group_size=st.integers(1, 4),
    n_groups=st.integers(1, 4),
    horizon=st.integers(1, 6),
    ignore=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_group_loo_with_mask_matches_loop(
    group_size: int, n_groups: int, horizon: int, ignore: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    games = group_size * n_groups
    returns = rng.normal(size=(games, horizon))
    lengths = rng.integers(1, horizon + 1, size=games)
    mask = np.arange(horizon)[None, :] < lengths[:, None]
    returns_with_padding = np.where(mask, returns, 123.0)  # padding must not leak
    groups = list(np.repeat(np.arange(n_groups), group_size))
    got = group_loo(returns_with_padding, groups, mask=mask, ignore_groups=ignore)
    whole_batch = ignore or group_size == 1
    np.testing.assert_allclose(got, brute_loo(returns, groups, mask, whole_batch), atol=1e-12)
    assert np.all(got[~mask] == 0.0)


def test_group_loo_game_alone_at_a_round_keeps_its_return() -> None:
    returns = np.array([[1.0, 2.0, 3.0], [5.0, 7.0, 0.0]])
    mask = np.array([[1, 1, 1], [1, 1, 0]])
    got = group_loo(returns, [0, 0], mask=mask)
    np.testing.assert_allclose(got, [[-4.0, -5.0, 3.0], [4.0, 5.0, 0.0]])


def test_group_loo_shape_errors() -> None:
    with pytest.raises(ValueError):
        group_loo(np.zeros(4), [0, 1, 2, 3])
    with pytest.raises(ValueError):
        group_loo(np.zeros((4, 2)), [0, 1, 2])
    with pytest.raises(ValueError):
        group_loo(np.zeros((4, 2)), [0, 1, 2, 3], mask=np.ones((4, 3)))
    with pytest.raises(ValueError):
        group_loo(np.zeros((4, 2)), [0, 1, 2, 3], [0, 1])
