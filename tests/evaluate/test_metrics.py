"""Behaviour measures on bot games with known answers."""

from __future__ import annotations

import math

import pytest

from detente.evaluate.metrics import game_measures, reward_measures
from detente.games import make_game
from detente.policies.bots import make_bot
from detente.protocol import make_protocol
from detente.rollout.runner import Match, play


def records_of(game: str, a: str, b: str, n: int = 20):
    matches = [
        Match(make_game(game, None, s), (make_bot(game, a), make_bot(game, b)), f"{s}")
        for s in range(n)
    ]
    return play(matches, make_protocol(game))


def test_ipd_conditional_cooperation_of_tit_for_tat():
    records = records_of("ipd", "tit-for-tat", "random", 40)
    m = game_measures("ipd", [(r, 0) for r in records])
    assert m["p_coop_after_c"] == 1.0 and m["p_coop_after_d"] == 0.0
    assert 0.4 < m["coop_rate"] < 0.65
    against_cooperator = game_measures("ipd", [(r, 0) for r in records_of("ipd", "grim", "always-cooperate", 2)])
    assert against_cooperator["coop_rate"] == 1.0 and math.isnan(against_cooperator["p_coop_after_d"])


def test_ipd_rewards_per_round():
    records = records_of("ipd", "tit-for-tat", "always-defect", 3)
    m = reward_measures([(r, 0) for r in records])
    assert m["reward"] == pytest.approx(0.9) and m["collective_reward"] == pytest.approx(2.3)


def test_trust_split_measures_of_honest_and_liar():
    honest = game_measures("trust-split", [(r, 0) for r in records_of("trust-split", "honest", "honest")])
    assert honest["claim_upper"] == 10 and honest["claim_lower"] == 0
    assert honest["honesty"] == 1.0 and honest["efficiency"] == pytest.approx(1.0)
    greedy = game_measures("trust-split", [(r, 1) for r in records_of("trust-split", "honest", "greedy")])
    assert greedy["claim_upper"] == 10 and greedy["claim_lower"] == 10
    liar = game_measures("trust-split", [(r, 1) for r in records_of("trust-split", "honest", "liar")])
    assert liar["honesty"] < 0.9  # it names the hand that beats the other's: false half the time


def test_split_efficiency_is_a_ratio_of_sums():
    greedy = game_measures("split", [(r, 0) for r in records_of("split", "greedy", "greedy", 60)])
    welfare = game_measures("split", [(r, 0) for r in records_of("split", "welfare", "welfare", 5)])
    assert welfare["efficiency"] == pytest.approx(1.0)
    assert 0.6 < greedy["efficiency"] < 0.7


def test_dond_agreement():
    assert game_measures("dond", [(r, 0) for r in records_of("dond", "greedy", "greedy", 5)])["agreement_rate"] == 0
    assert game_measures("dond", [(r, 0) for r in records_of("dond", "fair", "fair", 10)])["agreement_rate"] > 0.7


def _play_bots(game_name: str, bots: tuple[str, ...], rounds: int = 3):
    from detente.games import make_config, make_game
    from detente.policies.bots import make_bot
    from detente.protocol import make_protocol
    from detente.rollout.runner import Match, play

    config = make_config(game_name, {"rounds": rounds, "players": len(bots)})
    game = make_game(game_name, config, 0)
    policies = tuple(make_bot(game_name, b) for b in bots)
    (record,) = play([Match(game, policies, "g")], make_protocol(game_name, config=config))
    return record


def test_public_goods_measures_of_a_free_rider_among_contributors():
    from detente.evaluate.metrics import game_measures

    record = _play_bots("public-goods", ("free-rider", "full-contributor", "full-contributor"))
    assert game_measures("public-goods", [(record, 0)]) == {"contribution_rate": 0.0, "free_ride_rate": 1.0}
    assert game_measures("public-goods", [(record, 1), (record, 2)]) == {
        "contribution_rate": 1.0, "free_ride_rate": 0.0,
    }


def test_commons_measures_tell_sustainable_play_from_collapse():
    from detente.evaluate.metrics import game_measures

    greedy = _play_bots("commons", ("greedy",) * 5)
    sustainable = _play_bots("commons", ("sustainable",) * 5)
    seats = [(greedy, p) for p in range(5)]
    assert game_measures("commons", seats) == {"sustainable_rate": 0.0, "collapse_rate": 1.0}
    seats = [(sustainable, p) for p in range(5)]
    assert game_measures("commons", seats) == {"sustainable_rate": 1.0, "collapse_rate": 0.0}


def test_multi_ipd_cooperation_rate_counts_moves_toward_each_co_player():
    from detente.evaluate.metrics import game_measures

    record = _play_bots("multi-ipd", ("tit-for-tat", "tit-for-tat", "always-defect"))
    # Tit-for-tat: C toward both in round 1, then C toward the other TFT and D toward the defector.
    assert game_measures("multi-ipd", [(record, 0)])["coop_rate"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert game_measures("multi-ipd", [(record, 2)])["coop_rate"] == 0.0
