"""Split bots: decisions per value profile and the SPEC §1.3 reference payoffs."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest

from detente.games import ALICE, BOB, Game, Kind, make_game
from detente.games.items import Items
from detente.games.split import RoundStart
from detente.policies.base import Request
from detente.policies.bots import bot_names, make_bot
from detente.protocol import Protocol, Style, make_protocol


def request(game_name: str, protocol: Protocol, events, player: int, kind, round_: int) -> Request:
    return Request("s", game_name, player, round_, kind, (), tuple(events), protocol, seed=0)


def play(bots: tuple[str, str], seed: int, style: Style = Style.FULL) -> Game:
    """Drive a game with two bots, every reply going through the text protocol."""
    game = make_game("split", None, seed)
    protocol = make_protocol("split", style)
    policies = (make_bot("split", bots[0]), make_bot("split", bots[1]))
    while not game.done:
        phase = game.phase
        actions = {}
        for p in phase.players:
            r = request("split", protocol, game.events(p), p, phase.kind, game.round)
            (reply,) = policies[p].act([r])
            actions[p] = protocol.parse(phase.kind, reply.text)
        game.act(actions)
    return game


def decide(bot: str, own: Items, other: Items, quantity: int = 10) -> Items:
    start = RoundStart(0, Items(quantity, quantity, quantity), own, other)
    protocol = make_protocol("split")
    r = request("split", protocol, [start], ALICE, Kind.MOVE, 0)
    (reply,) = make_bot("split", bot).act([r])
    return protocol.parse_move(reply.text)


def test_canonical_names():
    assert set(bot_names("split")) == {"greedy", "welfare", "half"}


@pytest.mark.parametrize(
    ("bot", "own", "other", "expected"),
    [
        ("greedy", Items(10, 1, 1), Items(1, 10, 1), Items(10, 10, 10)),
        ("half", Items(10, 1, 1), Items(1, 10, 1), Items(5, 5, 5)),
        ("welfare", Items(10, 1, 1), Items(1, 10, 1), Items(10, 0, 5)),
        ("welfare", Items(10, 10, 1), Items(10, 1, 10), Items(5, 10, 0)),
        ("welfare", Items(1, 10, 10), Items(10, 1, 10), Items(0, 10, 5)),
    ],
)
def test_decisions(bot, own, other, expected):
    assert decide(bot, own, other) == expected


def test_decisions_follow_the_quantity():
    assert decide("greedy", Items(10, 1, 1), Items(1, 10, 1), quantity=7) == Items(7, 7, 7)
    assert decide("half", Items(10, 1, 1), Items(1, 10, 1), quantity=7) == Items(3, 3, 3)
    assert decide("welfare", Items(10, 1, 1), Items(1, 10, 1), quantity=7) == Items(7, 0, 3)


def per_profile(bots: tuple[str, str], games: int = 60) -> dict[tuple, tuple[float, float, float]]:
    """(reward A, reward B, max collective) of each value profile, checked constant."""
    seen: dict[tuple, set[tuple[float, float, float]]] = defaultdict(set)
    for seed in range(games):
        game = play(bots, seed, Style.COMPACT if seed % 2 else Style.FULL)
        for info in game.infos:
            a, b = info["rewards"]
            outcome = (round(a, 9), round(b, 9), info["max_collective"])
            seen[tuple(map(tuple, info["values"]))].add(outcome)
    assert len(seen) == 12
    assert all(len(outcomes) == 1 for outcomes in seen.values())
    return {profile: next(iter(outcomes)) for profile, outcomes in seen.items()}


@pytest.mark.parametrize(
    ("bots", "alice", "bob", "efficiency"),
    [
        (("greedy", "greedy"), 82.5, 82.5, 165 / 255),
        (("welfare", "welfare"), 127.5, 127.5, 1.0),
        (("greedy", "welfare"), 141.667, 68.333, 210 / 255),
        (("welfare", "greedy"), 68.333, 141.667, 210 / 255),
        (("half", "half"), 82.5, 82.5, 165 / 255),
    ],
)
def test_reference_payoffs_over_the_12_equally_likely_profiles(bots, alice, bob, efficiency):
    """SPEC §1.3: the mean over the (uniform) profiles; efficiency = Σ collective / Σ max."""
    outcomes = list(per_profile(bots).values())
    assert math.fsum(o[ALICE] for o in outcomes) / 12 == pytest.approx(alice, abs=1e-3)
    assert math.fsum(o[BOB] for o in outcomes) / 12 == pytest.approx(bob, abs=1e-3)
    collective = math.fsum(o[ALICE] + o[BOB] for o in outcomes)
    assert collective / math.fsum(o[2] for o in outcomes) == pytest.approx(efficiency)


def test_bots_are_deterministic_whatever_the_sampling_seed():
    start = RoundStart(0, Items(10, 10, 10), Items(10, 10, 1), Items(10, 1, 10))
    protocol = make_protocol("split")
    for name in bot_names("split"):
        texts = {
            reply.text
            for seed in range(5)
            for reply in make_bot("split", name).act(
                [Request("s", "split", BOB, 0, Kind.MOVE, (), (start,), protocol, seed)]
            )
        }
        assert len(texts) == 1
    assert play(("greedy", "welfare"), 3).infos == play(("greedy", "welfare"), 3).infos
