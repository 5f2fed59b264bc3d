"""Trust-and-Split rules: hands, turn order, allocation, variants, seeding."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import binomtest, chisquare

from detente.games import game_type, make_config, make_game
from detente.games.base import ALICE, BOB, IllegalAction, Kind, MessageEvent, Phase
from detente.games.trust_split import (
    HAND_PAIRS,
    HANDS,
    Hand,
    RoundEnd,
    RoundStart,
    TrustSplit,
    TrustSplitConfig,
    beater,
    beats,
)

R, P, S = Hand.ROCK, Hand.PAPER, Hand.SCISSORS


def _game(seed: int = 0, **config: object) -> TrustSplit:
    return TrustSplit(TrustSplitConfig(**config), seed)


def _play_round(game: TrustSplit, claims: tuple[int, int], text: str = "hi") -> None:
    while game.phase.kind is Kind.MESSAGE:
        game.act({game.phase.players[0]: text})
    game.act({ALICE: claims[0], BOB: claims[1]})


def _hands_per_round(game: TrustSplit, claims: tuple[int, int] = (5, 5)) -> list[tuple[Hand, Hand]]:
    hands = []
    while not game.done:
        hands.append(game.hands)
        _play_round(game, claims)
    return hands


def test_registered_with_metadata() -> None:
    assert game_type("trust-split") is TrustSplit
    assert TrustSplit.reward_scale == 100.0
    assert TrustSplit.describe(make_config("trust-split", {})).messages
    silent = make_config("trust-split", {"messages_per_player": 0})
    assert not TrustSplit.describe(silent).messages


def test_rock_paper_scissors_table() -> None:
    wins = {(a, b) for a in HANDS for b in HANDS if beats(a, b)}
    assert wins == {(R, S), (S, P), (P, R)}
    for hand in HANDS:
        assert beats(beater(hand), hand)
        assert not beats(hand, hand)
    assert [beater(h) for h in (R, P, S)] == [P, S, R]


def test_config_validation() -> None:
    with pytest.raises(ValidationError):
        TrustSplitConfig(high_value=1.0, low_value=1.0)
    with pytest.raises(ValidationError):
        TrustSplitConfig(coins=0)
    with pytest.raises(ValidationError):
        TrustSplitConfig(messages_per_player=-1)
    with pytest.raises(ValidationError):
        TrustSplitConfig(hands="rock")  # unknown key


def test_hands_always_differ_and_ordered_pairs_are_uniform() -> None:
    counts: Counter[tuple[Hand, Hand]] = Counter()
    for seed in range(600):
        for alice, bob in _hands_per_round(_game(seed)):
            assert alice is not bob
            counts[(alice, bob)] += 1
    assert set(counts) == set(HAND_PAIRS) and len(HAND_PAIRS) == 6
    assert sum(counts.values()) == 6000
    assert chisquare([counts[pair] for pair in HAND_PAIRS]).pvalue > 0.01


def test_round_start_shows_own_hand_opener_and_coins() -> None:
    game = _game(5, coins=7)
    alice, bob = game.events(ALICE)[0], game.events(BOB)[0]
    assert alice == RoundStart(0, game.hands[ALICE], game.opener == ALICE, 7)
    assert bob == RoundStart(0, game.hands[BOB], game.opener == BOB, 7)
    assert alice.opens != bob.opens


def test_opener_alternates_and_message_order() -> None:
    openers = []
    for seed in range(400):
        game = _game(seed)
        first = game.opener
        openers.append(first)
        for r in range(game.num_rounds):
            opener = (first + r) % 2
            assert game.phase == Phase(Kind.MESSAGE, (opener,))
            game.act({opener: "first"})
            assert game.phase == Phase(Kind.MESSAGE, (1 - opener,))
            game.act({1 - opener: "second"})
            assert game.phase == Phase(Kind.MOVE, (ALICE, BOB))
            assert game.events(1 - opener)[-1] == MessageEvent(r, opener, "first")
            assert game.events(opener)[-1] == MessageEvent(r, 1 - opener, "second")
            game.act({ALICE: 3, BOB: 3})
            assert game.infos[-1]["opener"] == opener
    # the first opener is a fair coin flip per game
    assert binomtest(sum(openers), len(openers)).pvalue > 0.01


def test_two_messages_each_alternate_from_the_opener() -> None:
    game = _game(11, messages_per_player=2)
    for _ in range(3):
        o = game.opener
        kinds = []
        while game.phase.kind is Kind.MESSAGE:
            kinds.append(game.phase.players)
            game.act({game.phase.players[0]: "x"})
        assert kinds == [(o,), (1 - o,), (o,), (1 - o,)]
        game.act({ALICE: 0, BOB: 0})


def test_no_messages_means_one_move_phase() -> None:
    game = _game(1, messages_per_player=0)
    assert game.phase == Phase(Kind.MOVE, (ALICE, BOB))
    game.act({ALICE: 4, BOB: 6})
    assert game.round == 1


def test_message_out_of_turn_is_illegal() -> None:
    game = _game(2)
    with pytest.raises(IllegalAction):
        game.act({1 - game.opener: "me first"})
    with pytest.raises(IllegalAction):
        game.act({ALICE: 5, BOB: 5})


@pytest.mark.parametrize("claim", [11, -1, 5.0, "5", True, None])
def test_illegal_claims(claim: object) -> None:
    game = _game(3)
    while game.phase.kind is Kind.MESSAGE:
        game.act({game.phase.players[0]: "x"})
    with pytest.raises(IllegalAction):
        game.act({ALICE: claim, BOB: 5})
    assert game.round == 0


def _seed_with_upper(upper: int) -> int:
    return next(s for s in range(100) if _game(s).upper == upper)


@pytest.mark.parametrize(
    ("claims", "units"),
    [
        ((10, 0), (10.0, 0.0)),
        ((0, 10), (0.0, 10.0)),
        ((10, 10), (5.0, 5.0)),
        ((7, 5), (70 / 12, 50 / 12)),
        ((3, 4), (3.0, 4.0)),  # fits: granted, 3 coins lost
        ((0, 0), (0.0, 0.0)),
    ],
)
def test_allocation_and_rewards(claims: tuple[int, int], units: tuple[float, float]) -> None:
    game = _game(_seed_with_upper(ALICE))
    hands = game.hands
    assert beats(hands[ALICE], hands[BOB])
    _play_round(game, claims)
    info = game.infos[0]
    assert info["units"] == pytest.approx(list(units), abs=1e-12)
    assert info["rewards"] == pytest.approx([units[0] * 10.0, units[1] * 1.0], abs=1e-12)
    assert game.rewards[0] == pytest.approx((units[0] * 10.0, units[1] * 1.0), abs=1e-12)
    assert info["hands"] == [hands[ALICE].value, hands[BOB].value]
    assert info["upper"] == ALICE and info["values"] == [10.0, 1.0]
    assert info["claims"] == list(claims)
    end_alice, end_bob = game.events(ALICE)[-2], game.events(BOB)[-2]
    assert end_alice == RoundEnd(
        0, hands[ALICE], True, claims[0], claims[1], info["units"][0], info["rewards"][0]
    )
    assert end_bob == RoundEnd(
        0, hands[BOB], False, claims[1], claims[0], info["units"][1], info["rewards"][1]
    )
    assert end_bob.other_upper and not end_alice.other_upper


def test_configured_values_and_coins() -> None:
    game = _game(_seed_with_upper(BOB), coins=4, high_value=7.0, low_value=0.5)
    _play_round(game, (4, 2))  # D = 6: units 8/3 and 4/3
    assert game.rewards[0] == pytest.approx((8 / 3 * 0.5, 4 / 3 * 7.0))
    with pytest.raises(IllegalAction):
        _play_round(game, (5, 0))


def test_info_is_json_serialisable() -> None:
    import json

    game = _game(4)
    _play_round(game, (6, 6))
    assert json.loads(json.dumps(game.infos[0])) == game.infos[0]


def test_alternating_hands_previous_winner_loses() -> None:
    first_rounds: Counter[tuple[Hand, Hand]] = Counter()
    new_hands: Counter[Hand] = Counter()
    for seed in range(600):
        game = _game(seed, alternating_hands=True)
        hands = _hands_per_round(game)
        first_rounds[hands[0]] += 1
        winners = [ALICE if beats(a, b) else BOB for a, b in hands]
        for r in range(1, len(hands)):
            assert hands[r][ALICE] is not hands[r][BOB]
            assert winners[r] == 1 - winners[r - 1]
            new_hands[hands[r][winners[r - 1]]] += 1  # the previous winner's hand: uniform
    assert chisquare([first_rounds[p] for p in HAND_PAIRS]).pvalue > 0.01
    assert chisquare([new_hands[h] for h in HANDS]).pvalue > 0.01


def test_same_seed_same_draws_whatever_the_actions() -> None:
    for alternating in (False, True):
        a = _game(42, alternating_hands=alternating, continuation=0.9)
        b = _game(42, alternating_hands=alternating, continuation=0.9)
        assert a.num_rounds == b.num_rounds
        assert a.opener == b.opener
        assert _hands_per_round(a, (10, 10)) == _hands_per_round(b, (0, 3))


def test_same_seed_same_actions_same_trajectory() -> None:
    def run(seed: int) -> tuple[list, list, list]:
        game = _game(seed)
        rng = np.random.default_rng(0)
        while not game.done:
            _play_round(game, (int(rng.integers(11)), int(rng.integers(11))))
        return game.events(ALICE) + game.events(BOB), game.infos, game.rewards

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_make_game_default_config() -> None:
    game = make_game("trust-split", None, 0)
    assert isinstance(game, TrustSplit) and game.config == TrustSplitConfig()
    assert game.num_rounds == 10
