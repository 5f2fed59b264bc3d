"""Commons text protocol: catch parsing, legal replies from the stock, prompts in both styles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detente.games.base import Kind, MessageEvent
from detente.games.commons import Commons, CommonsConfig, RoundEnd, RoundStart
from detente.protocol import InvalidReply, Style, make_protocol, protocol_type
from detente.protocol.commons import CommonsProtocol

FULL = CommonsProtocol(Style.FULL)
COMPACT = CommonsProtocol(Style.COMPACT)


def test_registered_and_sized_by_the_config() -> None:
    assert protocol_type("commons") is CommonsProtocol
    assert make_protocol("commons").high == 100
    assert make_protocol("commons", "compact", CommonsConfig(capacity=40, stock=40)).high == 40


@given(st.integers(0, 100), st.sampled_from([FULL, COMPACT]))
def test_round_trip(catch: int, protocol: CommonsProtocol) -> None:
    reply = protocol.format(Kind.MOVE, catch)
    assert reply == f"<<proposal_start>> {catch} <<proposal_end>>"
    assert protocol.parse(Kind.MOVE, reply) == catch


@pytest.mark.parametrize(
    "reply",
    ["<<proposal_start>> 101 <<proposal_end>>", "<<proposal_start>>  <<proposal_end>>", "10"],
)
def test_malformed_replies_are_invalid(reply: str) -> None:
    with pytest.raises(InvalidReply):
        FULL.parse_move(reply)


def test_legal_replies_follow_the_stock() -> None:
    game = Commons(CommonsConfig(players=2), 0)
    assert len(FULL.move_replies(game.events(0))) == 101
    game.act({0: 40, 1: 30})  # 30 left -> 60
    replies = FULL.move_replies(game.events(1))
    assert [FULL.parse_move(r) for r in replies] == list(range(61))
    assert len(FULL.move_replies()) == 101  # nothing observed: up to the capacity
    assert FULL.default_move() == 0 and FULL.parse_human(Kind.MOVE, "12") == 12


def test_rules_and_events_in_both_styles() -> None:
    game = Commons(CommonsConfig(), 0)
    rules = FULL.rules(game, 0)
    assert rules.startswith("You are Alice, a fisherman") and "Bob, Carol, Dave and Erin" in rules
    assert "fewer than 5 tons are left" in rules and "double, up to 100 tons" in rules
    assert COMPACT.rules(game, 0) == (
        "commons. 5 players. lake 100 of max 100; what is left doubles (max 100). under 5 left: "
        "collapse, game over. fish 0-lake."
    )
    with pytest.raises(ValueError, match="capacity"):
        FULL.rules(Commons(CommonsConfig(capacity=50, stock=50), 0), 0)
    end = RoundEnd(0, 100, 10, (100, 10, 10, 100, 10), 4, (43, 4, 4, 43, 4), 2, 4, True)
    assert COMPACT.render_event(end, 1) == "you 4 others 43 4 43 4, left 2, collapse"
    text = FULL.render_event(end, 1)
    assert "tons asked for: you 10, Alice 100, Carol 10, Dave 100, Erin 10." in text
    assert text.endswith("2 tons were left in the lake. The lake has collapsed: the game is over.")
    assert COMPACT.render_event(RoundStart(1, 80, 5, None), 0) == "lake 80"
    assert COMPACT.render_event(RoundStart(1, 80, 5, 3), 3) == "lake 80, you open"
    assert FULL.render_event(RoundStart(1, 1, 5, None), 0) == (
        "Round 2 begins. The lake holds 1 ton of fish."
    )


def test_compact_reminder_restates_the_stock_after_a_chat() -> None:
    start = RoundStart(0, 80, 5, 1)
    assert COMPACT.reminder([start], Kind.MOVE, 0) == ""
    chat = [start, MessageEvent(0, 1, "ten each")]
    assert COMPACT.reminder(chat, Kind.MOVE, 0) == "lake 80"
    assert COMPACT.reminder(chat, Kind.MESSAGE, 0) == FULL.reminder(chat, Kind.MOVE, 0) == ""
