"""Shared game machinery: allocation, horizon, rule enforcement."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from detente.games import IllegalAction, Kind, allocate, draw_horizon, make_config, make_game
from detente.games.base import GameConfig
from detente.games.ipd import Move


@pytest.mark.parametrize(
    ("quantity", "a", "b", "expected"),
    [
        (10, 10, 0, (10, 0)),  # one claims all, fits
        (10, 4, 5, (4, 5)),  # fits: granted, leftover 1 lost
        (10, 10, 10, (5, 5)),  # over-claim: scaled down
        (10, 10, 5, (20 / 3, 10 / 3)),  # pro rata 2:1
        (10, 0, 0, (0, 0)),  # nobody claims
        (0, 3, 3, (0, 0)),  # nothing to split
        (10, 7, 3, (7, 3)),  # exactly fits
    ],
)
def test_allocate_cases(quantity, a, b, expected):
    got = allocate(quantity, a, b)
    assert got == pytest.approx(expected)


@given(
    st.floats(0, 100, allow_nan=False),
    st.floats(0, 100, allow_nan=False),
    st.floats(0, 100, allow_nan=False),
)
def test_allocate_never_exceeds_quantity_or_claims(q, a, b):
    x, y = allocate(q, a, b)
    assert x + y <= q + 1e-9
    assert x <= a + 1e-9 and y <= b + 1e-9
    if a + b <= q:
        assert (x, y) == pytest.approx((a, b))


def test_allocate_rejects_negative():
    with pytest.raises(ValueError):
        allocate(10, -1, 2)


def test_fixed_horizon():
    assert draw_horizon(GameConfig(rounds=7), seed=3) == 7


def test_random_horizon_is_geometric_capped_and_seeded():
    config = GameConfig(continuation=0.9, max_rounds=30)
    draws = np.array([draw_horizon(config, s) for s in range(20000)])
    assert draws.min() >= 1 and draws.max() == 30
    # P(T > t) = p^t below the cap
    for t in (1, 5, 10):
        assert abs((draws > t).mean() - 0.9**t) < 0.015
    assert all(draw_horizon(config, s) == draws[s] for s in range(50))


def test_config_rejects_unknown_and_bad_values():
    with pytest.raises(ValidationError, match="rouns"):
        make_config("ipd", {"rouns": 3})
    with pytest.raises(ValidationError):
        make_config("ipd", {"temptation": 2.0})  # not a dilemma any more
    with pytest.raises(ValueError, match="unknown game"):
        make_game("chess", None, 0)


def test_rule_enforcement():
    game = make_game("ipd", None, 0)
    assert game.phase.kind is Kind.MOVE and game.phase.players == (0, 1)
    with pytest.raises(IllegalAction):
        game.act({0: Move.COOPERATE})  # Bob missing
    with pytest.raises(IllegalAction):
        game.act({0: "C", 1: Move.DEFECT})  # not a Move
    while not game.done:
        game.act({0: Move.COOPERATE, 1: Move.COOPERATE})
    with pytest.raises(IllegalAction, match="over"):
        _ = game.phase
    assert game.total_rewards() == (30.0, 30.0)
    assert not math.isnan(game.total_rewards()[0])
