"""The event codec: every event of every game survives JSON; bad input is rejected clearly."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

from detente.games import Event, game_names, make_game
from detente.games.codec import (
    EventDecodeError,
    decode_events,
    encode_events,
    event_type_name,
    event_types,
)
from detente.games.ipd import Move, RoundEnd
from detente.policies.bots import bot_names, make_bot
from detente.protocol import make_protocol
from detente.rollout.runner import Match, play


def trajectories(game_name: str) -> list[list[Event]]:
    """Every seat's events of a few full games, every bot of the game against another (the
    two cycled over the seats of a game of more players)."""
    names = bot_names(game_name)
    matches = []
    for i, first in enumerate(names):
        pair = (first, names[(i + 1) % len(names)])
        for seed in range(2):
            game = make_game(game_name, None, seed)
            bots = tuple(make_bot(game_name, pair[s % 2]) for s in range(game.num_players))
            matches.append(Match(game, bots, f"{first}-{seed}"))
    play(matches, make_protocol(game_name))
    return [m.game.events(p) for m in matches for p in range(m.game.num_players)]


@pytest.mark.parametrize("game_name", game_names())
def test_round_trip_over_real_games(game_name):
    seen_types = set()
    for events in trajectories(game_name):
        wire = json.loads(json.dumps(encode_events(events)))
        assert decode_events(wire) == events
        seen_types |= {type(e) for e in events}
    assert len(seen_types) >= 2  # round starts and ends at least (and messages where there are)


def test_every_event_class_is_registered_by_a_unique_name():
    names = event_types()
    assert all(event_type_name(cls) == name for name, cls in names.items())
    assert {cls.__module__ for cls in names.values()} >= {
        f"detente.games.{m}" for m in ("base", "ipd", "split", "dond", "trust_split")
    }


def test_encoded_form_is_readable():
    (item,) = encode_events([RoundEnd(3, Move.COOPERATE, Move.DEFECT, 0.0, 5.0)])
    assert item == {
        "type": "detente.games.ipd.RoundEnd",
        "round": 3,
        "own_move": "C",
        "other_move": "D",
        "own_reward": 0.0,
        "other_reward": 5.0,
    }


@dataclass(frozen=True)
class _Optional(Event):
    """A test-only event with the remaining supported annotations."""

    note: str | None
    pair: tuple[int, bool]
    names: list[str]


def test_optional_fixed_tuple_and_list_fields():
    events = [_Optional(0, None, (1, True), ["a"]), _Optional(1, "x", (2, False), [])]
    assert decode_events(json.loads(json.dumps(encode_events(events)))) == events


GOOD = {
    "type": "detente.games.ipd.RoundEnd",
    "round": 0,
    "own_move": "C",
    "other_move": "D",
    "own_reward": 0,
    "other_reward": 5.0,
}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"events": []}, "must be a list"),
        ([{**GOOD, "type": "os.system"}], "not a known event type"),
        ([{**GOOD, "own_move": "X"}], "not a Move"),
        ([{**GOOD, "round": "0"}], "expected int"),
        ([{**GOOD, "round": True}], "expected int"),
        ([{**GOOD, "extra": 1}], "unknown fields ['extra']"),
        ([{k: v for k, v in GOOD.items() if k != "own_reward"}], "missing fields ['own_reward']"),
        (
            [
                {
                    "type": event_type_name(_Optional),
                    "round": 0,
                    "note": None,
                    "pair": [1],
                    "names": [],
                }
            ],
            "expected a list of 2 items",
        ),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(data, message):
    with pytest.raises(EventDecodeError, match=re.escape(message)):
        decode_events(data)


def test_int_is_accepted_for_a_float_field():
    (event,) = decode_events([GOOD])
    assert event.own_reward == 0.0 and isinstance(event.own_reward, float)
