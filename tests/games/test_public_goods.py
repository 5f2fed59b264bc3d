"""Public goods rules: payoffs against an independent formula, visibility, chat schedule."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from detente.games import game_type
from detente.games.base import GameInfo, IllegalAction, Kind, MessageEvent, Phase
from detente.games.public_goods import PublicGoods, PublicGoodsConfig, RoundEnd, RoundStart


def _game(seed: int = 0, **config: object) -> PublicGoods:
    return PublicGoods(PublicGoodsConfig(**config), seed)


def reference_rewards(gives: tuple[int, ...], endowment: int, r: str) -> list[Fraction]:
    """Written apart from the game: kept coins plus an equal share of the multiplied pot,
    exactly."""
    pot = Fraction(r) * sum(gives)
    return [endowment - g + pot / len(gives) for g in gives]


def test_registered_with_metadata() -> None:
    assert game_type("public-goods") is PublicGoods
    assert PublicGoods.reward_scale == 16.0
    assert _game().info == GameInfo(4, True, (4.0, 22.0), 10, False, 16.0, 10.0)
    assert _game(players=6, multiplier=2.0).num_players == 6
    assert _game(messages_per_player=1).info.messages


def test_config_needs_a_dilemma() -> None:
    for bad in (
        {"multiplier": 1.0},
        {"multiplier": 4.0},
        {"players": 1},
        {"players": 2, "multiplier": 2.5},
    ):
        with pytest.raises(ValidationError):
            PublicGoodsConfig(**bad)
    with pytest.raises(ValidationError, match="multiplier"):
        PublicGoodsConfig(multiplier=0.5)
    with pytest.raises(ValidationError):
        PublicGoodsConfig(endowmnet=10)  # unknown key
    assert PublicGoodsConfig(players=2, multiplier=1.5).players == 2


@pytest.mark.parametrize(
    ("gives", "expected"),
    [
        ((10, 10, 10, 10), (16, 16, 16, 16)),  # everyone gives all: 40 · 1.6 / 4
        ((0, 0, 0, 0), (10, 10, 10, 10)),  # nobody gives
        ((0, 10, 10, 10), (22, 12, 12, 12)),  # one free rider: 48 / 4 = 12 each
        ((10, 0, 0, 0), (4, 14, 14, 14)),  # one sucker: 16 / 4 = 4 each
        ((5, 5, 0, 10), (13, 13, 18, 8)),  # 20 · 1.6 / 4 = 8
    ],
)
def test_hand_computed_payoffs(gives, expected) -> None:
    game = _game()
    game.act(dict(enumerate(gives)))
    assert game.rewards[0] == pytest.approx(expected)


@given(
    st.integers(2, 6).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.integers(0, 10), min_size=n, max_size=n))
    )
)
def test_payoffs_match_the_reference_formula(case) -> None:
    n, gives = case
    game = _game(players=n, multiplier=1.5)
    game.act(dict(enumerate(gives)))
    assert game.rewards[0] == pytest.approx(
        [float(x) for x in reference_rewards(tuple(gives), 10, "1.5")]
    )


def test_giving_is_dominated_and_full_giving_is_efficient() -> None:
    """Over every profile of 3 players giving 0, 5 or 10: giving one coin more always costs the
    giver 1 − r/N and always raises the group's total (r − 1)."""
    for gives in itertools.product((0, 5, 10), repeat=3):
        base = reference_rewards(gives, 10, "1.6")
        for p in range(3):
            if gives[p] == 10:
                continue
            more = list(gives)
            more[p] += 1
            after = reference_rewards(tuple(more), 10, "1.6")
            assert after[p] - base[p] == Fraction(-1) + Fraction("1.6") / 3
            assert sum(after) - sum(base) == Fraction("0.6")


def test_everyone_sees_every_contribution_and_reward() -> None:
    game = _game(seed=3)
    game.act({0: 10, 1: 0, 2: 5, 3: 7})
    for p in range(4):
        start, end, next_start = game.events(p)
        assert start == RoundStart(0, 10, None) and isinstance(next_start, RoundStart)
        assert isinstance(end, RoundEnd)
        assert end.contributions == (10, 0, 5, 7) and end.own_contribution == (10, 0, 5, 7)[p]
        assert end.rewards == pytest.approx((8.8, 18.8, 13.8, 11.8))  # 22 · 1.6 / 4 = 8.8
        assert end.own_reward == end.rewards[p] and end.share == pytest.approx(8.8)
    info = game.infos[0]
    assert info["pot"] == 22 and info["contribution_rate"] == pytest.approx(22 / 40)


@pytest.mark.parametrize("move", [11, -1, True, 5.0, "5"])
def test_illegal_contributions(move) -> None:
    game = _game()
    with pytest.raises(IllegalAction):
        game.act({0: move, 1: 0, 2: 0, 3: 0})
    game.act({0: 10, 1: 0, 2: 0, 3: 0})  # nothing was applied
    assert game.round == 1


def test_no_chat_by_default_and_the_horizon_is_kept() -> None:
    game = _game(rounds=3)
    assert game.phase == Phase(Kind.MOVE, (0, 1, 2, 3))
    for _ in range(3):
        game.act(dict.fromkeys(range(4), 10))
    assert game.done and game.total_rewards() == pytest.approx((48, 48, 48, 48))


def test_chat_one_message_each_in_seat_order_from_a_rotating_opener() -> None:
    game = _game(seed=4, messages_per_player=1, rounds=3)
    first = game.opener
    for r in range(3):
        opener = (first + r) % 4
        assert game.events(0)[-1] == RoundStart(r, 10, opener)
        for turn in range(4):
            sender = (opener + turn) % 4
            assert game.phase == Phase(Kind.MESSAGE, (sender,))
            game.act({sender: f"m{r}{sender}"})
        assert game.phase == Phase(Kind.MOVE, (0, 1, 2, 3))
        game.act(dict.fromkeys(range(4), 0))
    for p in range(4):
        heard = [e for e in game.events(p) if isinstance(e, MessageEvent)]
        assert len(heard) == 9 and all(e.sender != p for e in heard)  # 3 rounds × 3 others
    openers = {_game(seed=s, messages_per_player=1).opener for s in range(40)}
    assert openers == {0, 1, 2, 3}  # drawn from the seed
