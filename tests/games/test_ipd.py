"""IPD rules: the exact payoff table, observations, determinism."""

from __future__ import annotations

import pytest

from detente.games import make_config, make_game
from detente.games.ipd import Move, RoundEnd

C, D = Move.COOPERATE, Move.DEFECT


@pytest.mark.parametrize(
    ("a", "b", "rewards"),
    [(C, C, (3, 3)), (C, D, (0, 5)), (D, C, (5, 0)), (D, D, (1, 1))],
)
def test_payoff_table(a, b, rewards):
    game = make_game("ipd", None, 0)
    game.act({0: a, 1: b})
    assert game.rewards == [rewards]
    assert game.infos[0]["moves"] == [a.value, b.value]


def test_configurable_payoffs():
    config = make_config("ipd", {"reward": 4, "sucker": -1, "temptation": 6, "punishment": 0})
    game = make_game("ipd", config, 0)
    game.act({0: C, 1: D})
    assert game.rewards == [(-1, 6)]


def test_each_player_sees_the_other_move():
    game = make_game("ipd", None, 0)
    game.act({0: C, 1: D})
    alice_end = [e for e in game.events(0) if isinstance(e, RoundEnd)][0]
    bob_end = [e for e in game.events(1) if isinstance(e, RoundEnd)][0]
    assert (alice_end.own_move, alice_end.other_move, alice_end.own_reward) == (C, D, 0)
    assert (bob_end.own_move, bob_end.other_move, bob_end.own_reward) == (D, C, 5)


def test_ten_rounds_by_default():
    game = make_game("ipd", None, 5)
    n = 0
    while not game.done:
        game.act({0: D, 1: D})
        n += 1
    assert n == 10 and game.total_rewards() == (10, 10)
