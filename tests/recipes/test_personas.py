"""Persona data: every persona is a bot, N-player games seat the co-player in every other seat,
and the two-player games' chats are those the embedded models were built on."""

from __future__ import annotations

import numpy as np

from detente.games import game_names, make_config, make_game
from detente.policies.bots import bot_names, make_bot
from detente.protocol import Style, make_protocol
from detente.recipes.warmstart import (
    PERSONA_ROUNDS,
    TINY,
    TINY_COMMONS,
    TINY_PUBLIC_GOODS,
    TINY_TEST,
    persona_conversations,
    personas,
)
from detente.rollout.runner import Match, play

TWO_PLAYER = ("dond", "ipd", "split", "trust-split")


def test_every_persona_is_a_bot_of_its_game() -> None:
    for game in game_names():
        weights = personas(game)
        assert set(weights) <= set(bot_names(game)), game
        assert all(w > 0 for w in weights.values())


def test_shared_models_cover_the_two_player_games_and_each_n_player_game_has_its_own() -> None:
    assert TINY.games == TINY_TEST.games == TWO_PLAYER
    assert (TINY_PUBLIC_GOODS.games, TINY_COMMONS.games) == (("public-goods",), ("commons",))


def _two_seat_chats(games: tuple[str, ...], per_game: int, seed: int) -> dict[str, list]:
    """The persona draws as written for two seats: persona, co-player, seat 0 or 1."""
    out: dict[str, list] = {}
    for index, game in enumerate(games):
        names, weights = bot_names(game), personas(game)
        drawn = [n for n in weights if n in names]
        probs = np.array([weights[n] for n in drawn]) / sum(weights[n] for n in drawn)
        rng = np.random.default_rng([seed, index])
        matches, seats = [], []
        for k in range(per_game):
            persona = drawn[rng.choice(len(drawn), p=probs)]
            other = names[rng.integers(len(names))]
            seat = int(rng.integers(2))
            pair = (persona, other) if seat == 0 else (other, persona)
            config = make_config(game, {"rounds": PERSONA_ROUNDS.get(game, 10)})
            bots = tuple(make_bot(game, b) for b in pair)
            matches.append(Match(make_game(game, config, seed * 100_003 + k), bots, f"{game}-{k}"))
            seats.append(seat)
        records = play(matches, make_protocol(game, Style.COMPACT), seed=seed)
        out[game] = [
            [t.reply for t in record.seats[seat].turns]
            for record, seat in zip(records, seats, strict=True)
        ]
    return out


def test_two_player_persona_chats_are_unchanged() -> None:
    chats = persona_conversations(TWO_PLAYER, 5, seed=3)
    expected = _two_seat_chats(TWO_PLAYER, 5, seed=3)
    for game in TWO_PLAYER:
        got = [[m["content"] for m in c.messages if m["role"] == "assistant"] for c in chats[game]]
        assert got == expected[game]


def test_n_player_persona_chats_parse() -> None:
    chats = persona_conversations(("public-goods", "commons"), 12, seed=0)
    for game, players in (("public-goods", 4), ("commons", 5)):
        protocol = make_protocol(game, Style.COMPACT)
        assert len(chats[game]) == 12
        for chat in chats[game]:
            assert chat.messages[0]["content"].startswith(f"{game}. {players} players.")
            replies = [m["content"] for m in chat.messages if m["role"] == "assistant"]
            assert replies and all(0 <= protocol.parse_move(r) <= protocol.high for r in replies)
    # greedy co-players collapse some lakes: shorter games
    lengths = {len(c.messages) for c in chats["commons"]}
    assert min(lengths) < max(lengths) == 1 + 2 * PERSONA_ROUNDS.get("commons", 10)
