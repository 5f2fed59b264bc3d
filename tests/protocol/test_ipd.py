"""IPD text protocol: round trips, strictness, both styles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detente.games import Kind, make_game
from detente.games.ipd import Move
from detente.protocol import InvalidReply, Style, make_protocol


@pytest.mark.parametrize("style", list(Style))
@given(move=st.sampled_from(list(Move)), pad=st.sampled_from(["", " ", "\n", "  \n"]))
def test_round_trip(style, move, pad):
    protocol = make_protocol("ipd", style)
    assert protocol.parse(Kind.MOVE, pad + protocol.format(Kind.MOVE, move) + pad) == move


@pytest.mark.parametrize(
    "reply", ["A", "<a>", "<A> <B>", "I choose <A>", "<C>", "", "<A>.", "<<A>>"]
)
def test_invalid_replies_raise(reply):
    with pytest.raises(InvalidReply):
        make_protocol("ipd").parse(Kind.MOVE, reply)


def test_allowed_replies_cover_every_move_and_parse():
    protocol = make_protocol("ipd")
    replies = protocol.allowed_replies(Kind.MOVE)
    assert sorted(protocol.parse(Kind.MOVE, r) for r in replies) == sorted(Move)


def test_rules_mention_payoffs_and_compact_is_short():
    game = make_game("ipd", None, 0)
    full = make_protocol("ipd", Style.FULL).rules(game, 0)
    compact = make_protocol("ipd", Style.COMPACT).rules(game, 0)
    assert "Alice" in full and "<A>" in full and "5" in full
    assert len(compact) < 150 < len(full)


def test_observation_renders_history():
    game = make_game("ipd", None, 0)
    game.act({0: Move.COOPERATE, 1: Move.DEFECT})
    text = make_protocol("ipd").observation(game.events(1), Kind.MOVE, 1)
    assert "you chose <B>, the other player chose <A>" in text
    assert text.endswith("Your choice (<A> or <B>):")


def test_human_shorthand():
    protocol = make_protocol("ipd")
    assert protocol.parse_human(Kind.MOVE, " a ") is Move.COOPERATE
    assert protocol.parse_human(Kind.MOVE, "<B>") is Move.DEFECT
    with pytest.raises(InvalidReply):
        protocol.parse_human(Kind.MOVE, "c")
