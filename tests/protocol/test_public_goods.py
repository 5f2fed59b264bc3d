"""Public goods text protocol: contribution parsing, legal replies, prompts in both styles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detente.games.base import Kind, MessageEvent
from detente.games.public_goods import PublicGoods, PublicGoodsConfig, RoundEnd, RoundStart
from detente.protocol import InvalidReply, Style, make_protocol, protocol_type
from detente.protocol.public_goods import PublicGoodsProtocol

FULL = PublicGoodsProtocol(Style.FULL)
COMPACT = PublicGoodsProtocol(Style.COMPACT)
SPACE = st.text(alphabet=" \t\n", max_size=3)


def test_registered_and_sized_by_the_config() -> None:
    assert protocol_type("public-goods") is PublicGoodsProtocol
    assert make_protocol("public-goods", "compact").high == 10
    assert make_protocol("public-goods", "full", PublicGoodsConfig(endowment=20)).high == 20


@given(st.integers(0, 10), st.sampled_from([FULL, COMPACT]), SPACE, SPACE)
def test_round_trip(give: int, protocol: PublicGoodsProtocol, a: str, b: str) -> None:
    reply = protocol.format(Kind.MOVE, give)
    assert reply == f"<<proposal_start>> {give} <<proposal_end>>"
    assert protocol.parse(Kind.MOVE, reply) == give
    assert protocol.parse_move(f"{a}<<proposal_start>>{b}{give}{a}<<proposal_end>>{b}") == give


@pytest.mark.parametrize(
    "reply",
    [
        "<<proposal_start>> 11 <<proposal_end>>",
        "<<proposal_start>> -1 <<proposal_end>>",
        "<<proposal_start>> 05 <<proposal_end>>",
        "<<proposal_start>> 2.5 <<proposal_end>>",
        "<<proposal_start>> \u0665 <<proposal_end>>",  # Arabic-Indic five: not ASCII
        "<<proposal_start>> 5",
        "5",
        "I give 5 <<proposal_start>> 5 <<proposal_end>>",
    ],
)
def test_malformed_replies_are_invalid(reply: str) -> None:
    with pytest.raises(InvalidReply):
        FULL.parse_move(reply)


def test_legal_replies_default_and_shorthand() -> None:
    replies = FULL.move_replies()
    assert len(replies) == 11 and [FULL.parse_move(r) for r in replies] == list(range(11))
    assert FULL.default_move() == 10  # giving all costs the author, never the others
    assert FULL.parse_human(Kind.MOVE, " 7 ") == 7
    assert FULL.parse_human(Kind.MOVE, "<<proposal_start>> 3 <<proposal_end>>") == 3
    with pytest.raises(InvalidReply):
        FULL.parse_human(Kind.MOVE, "12")
    assert "0 to 10" in FULL.human_hint(Kind.MOVE)


def test_rules_name_the_co_players_and_the_formula() -> None:
    game = PublicGoods(PublicGoodsConfig(), 0)
    rules = FULL.rules(game, 1)
    assert rules.startswith("You are Bob") and "Alice, Carol and Dave" in rules
    assert "multiplied by 1.6" in rules and "10 − your contribution + 1.6 ×" in rules
    assert "There is no chat" in rules and "<<message_start>>" not in rules
    chat = FULL.rules(PublicGoods(PublicGoodsConfig(messages_per_player=1), 0), 0)
    assert "Alice, Bob, Carol, Dave" in chat and "<<message_start>>" in chat
    assert COMPACT.rules(game, 0) == (
        "public-goods. 4 players. 10 coins each, pot x1.6 shared by all. give 0-10."
    )
    with pytest.raises(ValueError, match="endowment"):
        FULL.rules(PublicGoods(PublicGoodsConfig(endowment=5), 0), 0)


def test_events_in_both_styles() -> None:
    end = RoundEnd(0, 0, (10, 0, 5, 7), 18.8, (8.8, 18.8, 13.8, 11.8), 8.8)
    assert COMPACT.render_event(end, 1) == "you 0 others 10 5 7, +18.8"
    text = FULL.render_event(end, 1)
    assert text.startswith("Round 1 result: coins put in: you 0, Alice 10, Carol 5, Dave 7.")
    assert "8.8 points to each player" in text and "you 18.8, Alice 8.8" in text
    assert COMPACT.render_event(RoundStart(2, 10, None), 0) == ""
    assert COMPACT.render_event(RoundStart(2, 10, 2), 0) == "Carol opens"
    assert FULL.render_event(RoundStart(2, 10, 0), 0) == (
        "Round 3 begins. You have 10 coins. You send the first message."
    )
    said = MessageEvent(0, 2, "all in?")
    assert COMPACT.render_message(said) == FULL.render_message(said) == "Carol says: all in?"
    assert COMPACT.instruction(Kind.MOVE) == "give?"
    assert "integer from 0 to 10" in FULL.instruction(Kind.MOVE)
