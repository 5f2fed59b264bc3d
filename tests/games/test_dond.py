"""Deal or No Deal rules: stock and value draws, exact deal/no-deal payoffs, turn order."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import binomtest, chisquare

from detente.games import ALICE, BOB, IllegalAction, Kind, MessageEvent, make_config, make_game
from detente.games.dond import (
    Dond,
    RoundEnd,
    RoundStart,
    draw_stock,
    draw_values,
    valid_values,
)
from detente.games.items import Items

NOTHING = Items(0, 0, 0)


def compositions(total: int, minimum: int) -> list[Items]:
    return [
        Items(*c) for c in itertools.product(range(minimum, total + 1), repeat=3) if sum(c) == total
    ]


def skip_talk(game: Dond) -> None:
    while game.phase.kind is Kind.MESSAGE:
        (speaker,) = game.phase.players
        game.act({speaker: "hello"})


def play_fixed(seed: int, moves: tuple[Items, Items], config=None) -> Dond:
    """Both players always propose ``moves`` clipped to the stock."""
    game = make_game("dond", config, seed)
    while not game.done:
        skip_talk(game)
        clip = [Items(*(min(k, n) for k, n in zip(m, game.stock, strict=True))) for m in moves]
        game.act({ALICE: clip[0], BOB: clip[1]})
    return game


def test_pinned_first_round_of_seed_0():
    """Pins the draw algorithm (stock, then values, from ``default_rng([seed, 0])``)."""
    game = make_game("dond", None, 0)
    assert game.stock == Items(4, 2, 1)
    assert game.values == (Items(7, 2, 1), Items(6, 4, 0))
    assert game.opener == BOB


def test_stock_and_values_respect_the_constraints_over_many_seeds():
    for seed in range(100):
        game = play_fixed(seed, (NOTHING, NOTHING))
        for info in game.infos:
            stock, (a, b) = info["stock"], info["values"]
            assert 5 <= sum(stock) <= 7 and min(stock) >= 1
            assert sum(a) == sum(b) == 10 and min(a) >= 0 and min(b) >= 0
            assert all(x > 0 or y > 0 for x, y in zip(a, b, strict=True))
            assert any(x > 0 and y > 0 for x, y in zip(a, b, strict=True))


def test_stock_distribution():
    """Total uniform on 5..7; given the total, the counts uniform over positive compositions."""
    stocks = [draw_stock(np.random.default_rng([seed, 0]), 5, 7) for seed in range(9_000)]
    totals = Counter(sum(s) for s in stocks)
    assert set(totals) == {5, 6, 7}
    assert chisquare([totals[n] for n in (5, 6, 7)]).pvalue > 1e-3
    sevens = Counter(s for s in stocks if sum(s) == 7)
    assert set(sevens) == set(compositions(7, 1)) and len(sevens) == 15
    assert chisquare(list(sevens.values())).pvalue > 1e-3


def test_value_distribution_is_uniform_over_valid_pairs():
    """Alice's marginal matches the brute-force count of valid partners per vector."""
    vectors = compositions(10, 0)
    assert len(vectors) == 66
    partners = {a: sum(valid_values(a, b) for b in vectors) for a in vectors}
    n = 20_000
    counts = Counter(draw_values(np.random.default_rng([seed, 0]))[0] for seed in range(n))
    total = sum(partners.values())
    expected = [n * partners[a] / total for a in vectors]
    assert chisquare([counts[a] for a in vectors], expected).pvalue > 1e-3
    draws = [draw_values(np.random.default_rng([seed, 1])) for seed in range(2_000)]
    assert all(valid_values(a, b) for a, b in draws)


def test_deal_pays_each_its_own_values():
    game = make_game("dond", None, 0)  # stock (4, 2, 1), values (7, 2, 1) / (6, 4, 0)
    skip_talk(game)
    game.act({ALICE: Items(2, 0, 1), BOB: Items(2, 2, 0)})
    assert game.rewards == [(15.0, 20.0)]  # 2·7 + 1·1 ; 2·6 + 2·4
    info = game.infos[0]
    assert info["agreed"] is True
    assert info["stock"] == [4, 2, 1] and info["values"] == [[7, 2, 1], [6, 4, 0]]
    assert info["proposals"] == [[2, 0, 1], [2, 2, 0]]
    assert info["rewards"] == [15.0, 20.0] and info["opener"] == BOB


@pytest.mark.parametrize(
    ("alice", "bob"),
    [
        (Items(2, 0, 1), Items(1, 2, 0)),  # leaves a hat on the table
        (Items(2, 0, 1), Items(3, 2, 0)),  # over-claims hats together
        (Items(4, 2, 1), Items(4, 2, 1)),  # both greedy
        (NOTHING, NOTHING),
        (Items(4, 2, 0), Items(0, 0, 0)),  # the ball is left
    ],
)
def test_no_deal_pays_nothing(alice, bob):
    game = make_game("dond", None, 0)
    skip_talk(game)
    game.act({ALICE: alice, BOB: bob})
    assert game.rewards == [(0.0, 0.0)] and game.infos[0]["agreed"] is False


def test_taking_everything_is_a_deal_if_the_other_takes_nothing():
    game = make_game("dond", None, 0)
    skip_talk(game)
    game.act({ALICE: NOTHING, BOB: Items(4, 2, 1)})
    assert game.rewards == [(0.0, 32.0)] and game.infos[0]["agreed"] is True


@pytest.mark.parametrize(
    "move", [Items(5, 0, 0), Items(0, 3, 0), Items(0, 0, 2), Items(-1, 0, 0), (1, 1, 1), "1 1 1"]
)
def test_proposals_above_the_stock_are_illegal(move):
    game = make_game("dond", None, 0)  # stock (4, 2, 1)
    skip_talk(game)
    with pytest.raises(IllegalAction):
        game.act({ALICE: move, BOB: NOTHING})
    assert game.round == 0


def test_observations_private_values_then_both_proposals_and_own_reward():
    game = make_game("dond", None, 0)
    alice_start, bob_start = game.events(ALICE)[0], game.events(BOB)[0]
    assert alice_start == RoundStart(0, Items(4, 2, 1), Items(7, 2, 1), opens=False)
    assert bob_start == RoundStart(0, Items(4, 2, 1), Items(6, 4, 0), opens=True)
    skip_talk(game)
    game.act({ALICE: Items(2, 0, 1), BOB: Items(2, 2, 0)})
    assert game.events(BOB)[-2] == RoundEnd(0, Items(2, 2, 0), Items(2, 0, 1), True, 20.0)
    assert game.events(ALICE)[-2] == RoundEnd(0, Items(2, 0, 1), Items(2, 2, 0), True, 15.0)


def talk_order(game: Dond) -> list[int]:
    """Speakers of the current round's message phases, acting through them."""
    speakers = []
    while game.phase.kind is Kind.MESSAGE:
        (speaker,) = game.phase.players
        with pytest.raises(IllegalAction):
            game.act({1 - speaker: "out of turn"})
        game.act({speaker: "hello"})
        speakers.append(speaker)
    assert game.phase.players == (ALICE, BOB)
    return speakers


def test_turn_order_opener_first_alternating_every_round():
    config = make_config("dond", {"messages_per_player": 2})
    game = make_game("dond", config, 0)
    for r in range(10):
        opener = (BOB + r) % 2  # seed 0 opens with Bob
        assert game.opener == opener
        assert game.events(opener)[-1].opens and not game.events(1 - opener)[-1].opens
        assert talk_order(game) == [opener, 1 - opener, opener, 1 - opener]
        game.act({ALICE: NOTHING, BOB: NOTHING})
    assert game.done


def test_messages_reach_only_the_other_player():
    game = make_game("dond", None, 0)
    game.act({BOB: "I want the hats"})
    game.act({ALICE: "no"})
    assert game.events(ALICE)[-1] == MessageEvent(0, BOB, "I want the hats")
    assert game.events(BOB)[-1] == MessageEvent(0, ALICE, "no")
    assert [type(e) for e in game.events(ALICE)] == [RoundStart, MessageEvent]


def test_no_messages_when_the_quota_is_zero():
    game = make_game("dond", make_config("dond", {"messages_per_player": 0}), 0)
    assert talk_order(game) == []


def test_first_opener_is_a_fair_coin_over_seeds():
    openers = [make_game("dond", None, seed).opener for seed in range(1_000)]
    assert binomtest(sum(openers), len(openers)).pvalue > 1e-3


def test_config_validation():
    with pytest.raises(ValidationError):
        make_config("dond", {"min_stock": 8, "max_stock": 7})
    with pytest.raises(ValidationError):
        make_config("dond", {"min_stock": 2})
    with pytest.raises(ValidationError):
        make_config("dond", {"max_stock": 13})
    with pytest.raises(ValidationError):
        make_config("dond", {"stock": 7})
    game = play_fixed(4, (NOTHING, NOTHING), make_config("dond", {"min_stock": 9, "max_stock": 9}))
    assert all(sum(info["stock"]) == 9 for info in game.infos)


def starts(game: Dond, player: int) -> list[RoundStart]:
    return [e for e in game.events(player) if isinstance(e, RoundStart)]


def test_same_seed_same_game_and_seed_groups_share_draws():
    first = play_fixed(5, (Items(1, 1, 1), NOTHING))
    again = play_fixed(5, (Items(1, 1, 1), NOTHING))
    other_actions = play_fixed(5, (Items(9, 9, 9), Items(2, 0, 1)))
    assert first.events(ALICE) == again.events(ALICE) and first.infos == again.infos
    for player in (ALICE, BOB):
        assert starts(first, player) == starts(other_actions, player)
    assert starts(first, ALICE) != starts(play_fixed(6, (NOTHING, NOTHING)), ALICE)


AUTHORS = make_config("dond", {"rules": "authors"})


def test_authors_rules_values_fixed_per_game_and_types_may_be_missing():
    fixed_values, missing_types = True, False
    for seed in range(200):
        ours = play_fixed(seed, (NOTHING, NOTHING))
        theirs = play_fixed(seed, (NOTHING, NOTHING), AUTHORS)
        assert len({tuple(map(tuple, i["values"])) for i in theirs.infos}) == 1
        fixed_values &= len({tuple(map(tuple, i["values"])) for i in ours.infos}) == 1
        for info in theirs.infos:
            assert 5 <= sum(info["stock"]) <= 7 and min(info["stock"]) >= 0
            (a, b) = info["values"]
            assert sum(a) == sum(b) == 10 and valid_values(Items(*a), Items(*b))
            missing_types |= min(info["stock"]) == 0
        assert all(min(info["stock"]) >= 1 for info in ours.infos)
    assert not fixed_values and missing_types  # ours redraws values; theirs leaves types out


def test_authors_stock_is_uniform_over_non_negative_compositions():
    stocks = [draw_stock(np.random.default_rng([seed, 0]), 5, 7, 0) for seed in range(9_000)]
    sevens = Counter(s for s in stocks if sum(s) == 7)
    assert set(sevens) == set(compositions(7, 0)) and len(sevens) == 36
    assert chisquare(list(sevens.values())).pvalue > 1e-3


def test_authors_rules_show_the_other_values_after_each_round():
    for config, shown in ((None, False), (AUTHORS, True)):
        game = make_game("dond", config, 0)
        skip_talk(game)
        game.act({ALICE: NOTHING, BOB: NOTHING})
        alice_values, bob_values = game.values
        ends = [game.events(p)[-2] for p in (ALICE, BOB)]
        assert all(isinstance(e, RoundEnd) for e in ends)
        expected = (bob_values, alice_values) if shown else (None, None)
        assert (ends[ALICE].other_values, ends[BOB].other_values) == expected


def test_authors_rules_cap_the_stock_at_one_type_s_limit():
    make_config("dond", {"max_stock": 12})  # ours: at least one of each other type
    with pytest.raises(ValidationError, match="rules=authors"):
        make_config("dond", {"max_stock": 11, "rules": "authors"})
    with pytest.raises(ValidationError):
        make_config("dond", {"rules": "theirs"})
