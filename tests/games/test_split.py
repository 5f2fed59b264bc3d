"""Split rules: the value-profile distribution, exact rewards, observations, determinism."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import chisquare

from detente.games import IllegalAction, make_config, make_game
from detente.games.items import Items
from detente.games.split import RoundEnd, RoundStart, Split, draw_values

HATS10 = (Items(10, 1, 1), Items(1, 10, 1))  # Alice values hats, Bob values books


def valid_profiles() -> set[tuple[Items, Items]]:
    """Brute force: pairs in {1,10}^3 with equal totals and different vectors."""
    vectors = [Items(*v) for v in itertools.product((1, 10), repeat=3)]
    return {(a, b) for a in vectors for b in vectors if sum(a) == sum(b) and a != b}


def game_with_values(values: tuple[Items, Items]) -> Split:
    """The first seed whose round 0 deals ``values``."""
    for seed in range(1000):
        game = make_game("split", None, seed)
        if game.values == values:
            return game
    raise AssertionError(f"no seed deals {values}")


def test_value_profiles_are_the_12_valid_pairs_uniformly():
    profiles = valid_profiles()
    assert len(profiles) == 12
    counts = Counter(draw_values(np.random.default_rng([seed, 0])) for seed in range(12_000))
    assert set(counts) == profiles
    assert chisquare(list(counts.values())).pvalue > 1e-3


def test_dealt_values_satisfy_the_constraints_over_many_rounds():
    profiles = valid_profiles()
    for seed in range(50):
        game = make_game("split", None, seed)
        while not game.done:
            a, b = game.values
            assert (a, b) in profiles and sum(a) == sum(b) and a != b
            game.act({0: Items(10, 10, 10), 1: Items(0, 0, 0)})


@pytest.mark.parametrize(
    ("moves", "rewards", "units"),
    [
        # every claim fits: each receives its claim
        ((Items(3, 2, 1), Items(4, 5, 6)), (33.0, 60.0), ((3, 2, 1), (4, 5, 6))),
        # hats 10+5 > 10: 10·10/15 vs 10·5/15; books fit; balls 7+7: 5 each
        (
            (Items(10, 0, 7), Items(5, 10, 7)),
            (200 / 3 + 5, 10 / 3 + 100 + 5),
            ((20 / 3, 0, 5), (10 / 3, 10, 5)),
        ),
        ((Items(0, 0, 0), Items(0, 0, 0)), (0.0, 0.0), ((0, 0, 0), (0, 0, 0))),
        ((Items(10, 10, 10), Items(10, 10, 10)), (60.0, 60.0), ((5, 5, 5), (5, 5, 5))),
    ],
)
def test_exact_rewards_and_info(moves, rewards, units):
    game = game_with_values(HATS10)
    game.act({0: moves[0], 1: moves[1]})
    assert game.rewards[0] == pytest.approx(rewards)
    info = game.infos[0]
    assert info["values"] == [[10, 1, 1], [1, 10, 1]]
    assert info["proposals"] == [list(moves[0]), list(moves[1])]
    assert np.allclose(info["units"], units)
    assert info["rewards"] == pytest.approx(list(rewards))
    assert info["max_collective"] == 210  # 10·10 + 10·10 + 10·1
    assert info["efficiency"] == pytest.approx(sum(rewards) / 210)


def test_efficiency_is_one_when_each_type_goes_to_who_values_it_most():
    game = game_with_values(HATS10)
    game.act({0: Items(10, 0, 5), 1: Items(0, 10, 5)})
    assert game.rewards[0] == (105.0, 105.0)
    assert game.infos[0]["efficiency"] == 1.0


def test_each_player_sees_both_values_then_both_proposals_and_scores():
    game = game_with_values(HATS10)
    alice_start, bob_start = game.events(0)[0], game.events(1)[0]
    assert isinstance(alice_start, RoundStart) and isinstance(bob_start, RoundStart)
    assert (alice_start.own_values, alice_start.other_values) == HATS10
    assert (bob_start.own_values, bob_start.other_values) == HATS10[::-1]
    assert alice_start.quantities == Items(10, 10, 10)
    game.act({0: Items(3, 2, 1), 1: Items(4, 5, 6)})
    end = game.events(1)[1]
    assert isinstance(end, RoundEnd)
    assert (end.own_proposal, end.other_proposal) == (Items(4, 5, 6), Items(3, 2, 1))
    assert (end.own_units, end.own_reward, end.other_reward) == ((4, 5, 6), 60.0, 33.0)


@pytest.mark.parametrize(
    "move",
    [Items(11, 0, 0), Items(0, -1, 0), (1, 2, 3), Items(1.0, 2, 3), Items(True, 0, 0), "1 2 3"],
)
def test_illegal_moves(move):
    game = make_game("split", None, 0)
    with pytest.raises(IllegalAction):
        game.act({0: move, 1: Items(0, 0, 0)})
    assert game.round == 0 and not game.rewards


def test_quantity_is_configurable_and_bounded():
    game = make_game("split", make_config("split", {"quantity": 4}), 0)
    with pytest.raises(IllegalAction):
        game.act({0: Items(5, 0, 0), 1: Items(0, 0, 0)})
    game.act({0: Items(4, 4, 4), 1: Items(4, 0, 0)})
    assert np.allclose(game.infos[0]["units"], [[2, 4, 4], [2, 0, 0]])
    for bad in ({"quantity": 11}, {"quantity": 0}, {"values": [1, 10]}):
        with pytest.raises(ValidationError):
            make_config("split", bad)


def play_fixed(seed: int, moves: tuple[Items, Items]) -> Split:
    game = make_game("split", None, seed)
    while not game.done:
        game.act({0: moves[0], 1: moves[1]})
    return game


def starts(game: Split, player: int) -> list[RoundStart]:
    return [e for e in game.events(player) if isinstance(e, RoundStart)]


def test_same_seed_same_game_and_seed_groups_share_draws():
    first = play_fixed(7, (Items(10, 10, 10), Items(5, 5, 5)))
    again = play_fixed(7, (Items(10, 10, 10), Items(5, 5, 5)))
    other_actions = play_fixed(7, (Items(0, 3, 9), Items(1, 1, 1)))
    assert first.events(0) == again.events(0) and first.infos == again.infos
    assert len(first.infos) == 10
    assert starts(first, 0) == starts(other_actions, 0)
    assert starts(first, 1) == starts(other_actions, 1)
    assert starts(first, 0) != starts(play_fixed(8, (Items(0, 0, 0),) * 2), 0)


def test_rounds_draw_independently():
    """Round r's values come from ``default_rng([seed, r])``, not from the previous round."""
    game = play_fixed(3, (Items(0, 0, 0), Items(0, 0, 0)))
    dealt = [(s.own_values, s.other_values) for s in starts(game, 0)]
    assert dealt == [draw_values(np.random.default_rng([3, r])) for r in range(10)]
