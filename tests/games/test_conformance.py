"""Every registered game passes the same checks (PettingZoo-style conformance)."""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest

from detente.games import GAMES, make_game
from detente.policies.bots import bot_names, make_bot
from detente.protocol import Style, make_protocol
from detente.rollout.runner import Match, play


def trajectory_hash(game_name: str, seed: int, bots: tuple[str, str], style: Style) -> str:
    game = make_game(game_name, None, seed)
    policies = (make_bot(game_name, bots[0]), make_bot(game_name, bots[1]))
    (record,) = play([Match(game, policies, "g")], make_protocol(game_name, style), seed=seed)
    return hashlib.sha256(json.dumps(record.to_json(), sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("game_name", sorted(GAMES))
def test_same_seed_same_trajectory_and_no_global_random(game_name):
    names = bot_names(game_name)
    assert names, f"{game_name} has no bots"
    for style in Style:
        for a, b in [(names[0], names[-1]), (names[-1], names[0])]:
            random.seed(1)
            np.random.seed(1)
            first = trajectory_hash(game_name, 11, (a, b), style)
            random.seed(2)  # global RNGs must not matter
            np.random.seed(2)
            assert trajectory_hash(game_name, 11, (a, b), style) == first


@pytest.mark.parametrize("game_name", sorted(GAMES))
def test_seed_groups_share_draws_whatever_the_actions(game_name):
    names = bot_names(game_name)
    starts = []
    for bots in [(names[0], names[0]), (names[-1], names[0])]:
        game = make_game(game_name, None, 21)
        (record,) = play(
            [Match(game, (make_bot(game_name, bots[0]), make_bot(game_name, bots[1])), "g")],
            make_protocol(game_name),
        )
        # round-start events (hands, values, stock) are the environment's draws
        starts.append(
            [repr(e) for e in game.events(0) if type(e).__name__ == "RoundStart"]
        )
        assert record.num_rounds == game.num_rounds
    assert starts[0] == starts[1]


@pytest.mark.parametrize("game_name", sorted(GAMES))
def test_every_bot_produces_valid_replies(game_name):
    names = bot_names(game_name)
    policies = [make_bot(game_name, n) for n in names]
    matches = [
        Match(make_game(game_name, None, s), (a, b), f"{i}-{j}-{s}")
        for i, a in enumerate(policies)
        for j, b in enumerate(policies)
        for s in range(3)
    ]
    records = play(matches, make_protocol(game_name))
    turns = [t for r in records for seat in r.seats for t in seat.turns]
    assert turns and not any(t.invalid_attempts for t in turns)
