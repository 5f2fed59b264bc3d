"""N-player IPD text protocol: round trips for every seat and move at N = 2, 3, 4, strictness,
the game's check of the names, constrained replies, both styles, people's shorthand."""

from __future__ import annotations

import itertools

import pytest

from detente.games import Kind, make_config, make_game
from detente.games.base import IllegalAction, others
from detente.games.ipd import Move
from detente.games.multi_ipd import Addressed
from detente.protocol import InvalidReply, Style, make_protocol

C, D = Move.COOPERATE, Move.DEFECT


def protocol_for(n: int, style: Style = Style.FULL):
    return make_protocol("multi-ipd", style, make_config("multi-ipd", {"players": n}))


def game_for(n: int, seed: int = 0):
    return make_game("multi-ipd", make_config("multi-ipd", {"players": n}), seed)


@pytest.mark.parametrize("style", list(Style))
@pytest.mark.parametrize("n", [2, 3, 4])
def test_round_trip_for_every_seat_and_move(n, style):
    protocol = protocol_for(n, style)
    for seat in range(n):
        for moves in itertools.product(list(Move), repeat=n - 1):
            move = Addressed(moves, others(seat, n))
            for pad in ["", " ", "\n", "  \n"]:
                parsed = protocol.parse(Kind.MOVE, pad + protocol.format(Kind.MOVE, move) + pad)
                assert parsed == move and parsed.toward == move.toward


def test_canonical_reply_text():
    protocol = protocol_for(3)
    assert protocol.format_move(Addressed((C, D), (0, 2))) == "Alice: <A>, Carol: <B>"
    assert protocol_for(2).format_move(Addressed((D,), (0,))) == "Alice: <B>"
    with pytest.raises(TypeError):
        protocol.format_move((C, D))  # a plain tuple does not say whose co-players


@pytest.mark.parametrize(
    "reply",
    [
        "<A> <B>",
        "Bob: <A>",  # one entry short
        "Bob: <A>, Carol: <B>, Dave: <A>",  # one too many
        "Carol: <B>, Bob: <A>",  # not in seat order
        "Bob: <A>, Bob: <B>",
        "Bob: <A>, Dave: <B>",  # no Dave in a 3-player game
        "Bob: <A>,Carol: <B>",
        "Bob:<A>, Carol: <B>",
        "bob: <A>, carol: <B>",
        "Bob: A, Carol: B",
        "Bob: <C>, Carol: <D>",
        "Bob: <A>, Carol: <B>.",
        "I choose Bob: <A>, Carol: <B>",
        "",
    ],
)
def test_invalid_replies_raise(reply):
    with pytest.raises(InvalidReply):
        protocol_for(3).parse(Kind.MOVE, reply)


def test_the_game_rejects_a_reply_that_names_the_wrong_players():
    """The text cannot tell who replies: Alice's reply parses anywhere, and only Alice may
    play it."""
    protocol, game = protocol_for(3), game_for(3)
    move = protocol.parse_move("Bob: <A>, Carol: <B>")
    game.check_move(0, move)
    for seat in (1, 2):
        with pytest.raises(IllegalAction):
            game.check_move(seat, move)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_allowed_replies_are_every_legal_move_of_the_seat(n):
    protocol, game = protocol_for(n), game_for(n)
    for seat in range(n):
        replies = protocol.allowed_replies(Kind.MOVE, game.events(seat))
        assert len(replies) == len(set(replies)) == 2 ** (n - 1)
        moves = [protocol.parse(Kind.MOVE, r) for r in replies]
        for move in moves:
            game.check_move(seat, move)
        assert sorted(moves) == sorted(itertools.product(list(Move), repeat=n - 1))
    assert protocol.allowed_replies(Kind.MOVE) is None  # the names depend on the seat


@pytest.mark.parametrize("n", [2, 3, 4])
def test_default_is_defection_toward_everyone_and_legal(n):
    protocol, game = protocol_for(n), game_for(n)
    assert protocol.default(Kind.MOVE) == (D,) * (n - 1)
    for seat in range(n):
        game.check_move(seat, protocol.default(Kind.MOVE))


def test_rules_name_the_co_players_and_the_reply_shape():
    game = game_for(3)
    full = make_protocol("multi-ipd", Style.FULL).rules(game, 1)
    compact = make_protocol("multi-ipd", Style.COMPACT).rules(game, 1)
    assert full.startswith("You are Bob, playing a repeated game with 2 other players: Alice and")
    assert '"Alice: X, Carol: X"' in full and "5" in full and "sum" in full
    assert "Alice: X, Carol: X" in compact and "you Bob" in compact
    assert len(compact) < 150 < len(full)
    told_config = make_config("multi-ipd", {"players": 2, "tell_horizon": True})
    told = make_game("multi-ipd", told_config, 0)
    assert "1 other player: Bob." in make_protocol("multi-ipd").rules(told, 0)
    assert "lasts 10 rounds" in make_protocol("multi-ipd").rules(told, 0)


def test_full_observation_shows_the_whole_round():
    game = game_for(3)
    game.act({0: (C, D), 1: (D, C), 2: (C, C)})
    text = make_protocol("multi-ipd").observation(game.events(2), Kind.MOVE, 2)
    assert (
        "Round 1 result: you chose <A> toward Alice and <A> toward Bob; Alice chose <A> toward "
        "Bob and <B> toward you; Bob chose <B> toward Alice and <A> toward you. "
        "Points: you 3, Alice 5, Bob 8."
    ) in text
    assert text.endswith("Round 2.\nYour choices (each other player's name: <A> or <B>):")


def test_compact_observation_shows_the_seats_own_pairs():
    game = game_for(3)
    game.act({0: (C, D), 1: (D, C), 2: (C, C)})
    text = make_protocol("multi-ipd", Style.COMPACT).observation(game.events(2), Kind.MOVE, 2)
    assert text == "Alice: you <A> they <B>; Bob: you <A> they <A>; points 3\nmove?"


def test_human_shorthand():
    protocol = protocol_for(3)
    move = protocol.parse_human(Kind.MOVE, " carol b, bob A ")
    assert move == (C, D) and move.toward == (1, 2)
    assert protocol.parse_human(Kind.MOVE, "Alice: <B>, Carol: <A>").toward == (0, 2)
    assert protocol.parse_human(Kind.MOVE, "alice:a carol:<b>") == (C, D)
    for text in ["AB", "bob a", "bob a bob b", "bob c carol a", "bob a, dave b"]:
        with pytest.raises(InvalidReply):
            protocol.parse_human(Kind.MOVE, text)
    assert protocol.format(Kind.MOVE, move) == "Bob: <A>, Carol: <B>"
