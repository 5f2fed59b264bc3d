"""Commons harvest rules: catches against an independent formula, regrowth, collapse."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from detente.games import game_type
from detente.games.base import GameInfo, IllegalAction, Kind, MessageEvent, Phase
from detente.games.commons import Commons, CommonsConfig, RoundEnd, RoundStart, harvest


def _game(seed: int = 0, **config: object) -> Commons:
    return Commons(CommonsConfig(**config), seed)


def reference_catches(stock: int, requests: tuple[int, ...]) -> list[int]:
    """Written apart from the game: the requests if they fit, else floor(S · q / Σq) exactly."""
    total = sum(requests)
    if total <= stock:
        return list(requests)
    return [int(Fraction(stock * q, total)) for q in requests]


def _round(game: Commons, requests: tuple[int, ...]) -> None:
    game.act(dict(enumerate(requests)))


def test_registered_with_metadata() -> None:
    assert game_type("commons") is Commons
    assert Commons.reward_scale == 10.0
    assert _game().info == GameInfo(5, True, (0.0, 100.0), 10, False, 10.0)
    assert _game(players=3, continuation=0.9, max_rounds=20).info.max_rounds == 20
    assert _game(messages_per_player=1).info.messages


def test_config_validation() -> None:
    for bad in (
        {"stock": 120},  # above capacity
        {"collapse_below": 10, "stock": 8, "capacity": 8},  # collapsed from the start
        {"players": 1},
        {"collapse_below": -1},
        {"lake": 100},  # unknown key
    ):
        with pytest.raises(ValidationError):
            CommonsConfig(**bad)
    assert CommonsConfig(stock=50, capacity=200, collapse_below=0).stock == 50


@pytest.mark.parametrize(
    ("stock", "requests", "expected"),
    [
        (100, (10, 10, 10, 10, 10), (10, 10, 10, 10, 10)),  # fits
        (100, (100, 100, 100, 100, 100), (20, 20, 20, 20, 20)),  # all greedy: 1/5 each
        (100, (100, 10, 10, 100, 10), (43, 4, 4, 43, 4)),  # 10000/230 = 43.5, 1000/230 = 4.3
        (100, (60, 50, 0, 0, 0), (54, 45, 0, 0, 0)),  # 6000/110 = 54.5, 5000/110 = 45.5
        (7, (7, 7, 7), (2, 2, 2)),  # 49/21 = 2.33: one ton stays in the lake
        (0, (0, 0), (0, 0)),
    ],
)
def test_hand_computed_catches(stock, requests, expected) -> None:
    assert harvest(stock, requests) == expected


@given(
    st.integers(0, 200).flatmap(
        lambda s: st.tuples(
            st.just(s), st.lists(st.integers(0, s), min_size=2, max_size=7).map(tuple)
        )
    )
)
def test_catches_match_the_reference_formula(case) -> None:
    stock, requests = case
    caught = harvest(stock, requests)
    assert list(caught) == reference_catches(stock, requests)
    assert sum(caught) <= stock and all(h <= q for h, q in zip(caught, requests, strict=True))


def test_regrowth_doubles_up_to_capacity() -> None:
    game = _game(players=2)
    _round(game, (20, 10))  # 70 left -> 140, capped at 100
    assert game.stock == 100 and game.infos[0]["next_stock"] == 100
    _round(game, (40, 30))  # 30 left -> 60
    assert game.stock == 60 and game.rewards == [(20.0, 10.0), (40.0, 30.0)]
    assert game.events(0)[-1] == RoundStart(2, 60, 2, None)


def test_everyone_sees_every_request_and_catch() -> None:
    game = _game()
    _round(game, (100, 10, 10, 100, 10))
    for p in range(5):
        end = next(e for e in game.events(p) if isinstance(e, RoundEnd))
        assert end.requests == (100, 10, 10, 100, 10) and end.harvests == (43, 4, 4, 43, 4)
        assert end.own_request == end.requests[p] and end.own_harvest == end.harvests[p]
        assert (end.stock, end.remaining, end.next_stock, end.collapsed) == (100, 2, 4, True)


def test_sustainable_catches_keep_the_lake_full_for_the_whole_horizon() -> None:
    game = _game(rounds=12, max_rounds=12)
    while not game.done:
        assert game.stock == 100
        _round(game, (10,) * 5)  # 50 left, doubles back to 100
    assert game.num_rounds == 12 and game.total_rewards() == (120.0,) * 5


def test_collapse_ends_the_game_early() -> None:
    game = _game()
    _round(game, (100,) * 5)
    assert game.done and game.num_rounds == 1 and game.rewards == [(20.0,) * 5]
    assert game.infos[0]["collapsed"] and game.infos[0]["remaining"] == 0
    assert [type(e) for e in game.events(0)] == [RoundStart, RoundEnd]  # no round 2 dealt
    with pytest.raises(IllegalAction, match="over"):
        _ = game.phase


def test_collapse_threshold_is_strictly_below() -> None:
    at = _game()
    _round(at, (95, 0, 0, 0, 0))  # exactly 5 left: no collapse, regrows to 10
    assert not at.done and at.stock == 10
    below = _game()
    _round(below, (96, 0, 0, 0, 0))  # 4 left
    assert below.done and below.num_rounds == 1
    never = _game(collapse_below=0, rounds=3)
    for _ in range(3):
        _round(never, (never.stock,) + (0,) * 4)  # an empty lake stays empty, the game goes on
    assert never.num_rounds == 3 and never.rewards[1:] == [(0.0,) * 5] * 2


def test_requests_above_the_stock_are_illegal() -> None:
    game = _game(players=2)
    _round(game, (40, 30))  # stock 60 next
    for move in (61, -1, True, 3.0):
        with pytest.raises(IllegalAction):
            game.act({0: move, 1: 0})
    _round(game, (60, 0))


def test_chat_one_message_each_in_seat_order_from_a_rotating_opener() -> None:
    game = _game(seed=2, players=3, messages_per_player=1, rounds=2)
    first = game.opener
    for r in range(2):
        opener = (first + r) % 3
        for turn in range(3):
            assert game.phase == Phase(Kind.MESSAGE, ((opener + turn) % 3,))
            game.act({(opener + turn) % 3: "ten each"})
        _round(game, (10, 10, 10))
    assert all(sum(isinstance(e, MessageEvent) for e in game.events(p)) == 4 for p in range(3))
