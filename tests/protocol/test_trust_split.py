"""Trust-and-Split text protocol: proposal parsing, prompts, hand-claim detection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detente.games.base import ALICE, BOB, Kind
from detente.games.trust_split import (
    HANDS,
    Hand,
    RoundEnd,
    RoundStart,
    TrustSplit,
    TrustSplitConfig,
)
from detente.protocol import InvalidReply, Style, make_protocol, protocol_type
from detente.protocol.trust_split import TrustSplitProtocol, claimed_hand

FULL = TrustSplitProtocol(Style.FULL)
COMPACT = TrustSplitProtocol(Style.COMPACT)
SPACE = st.text(alphabet=" \t\n", max_size=3)
BEATS_OF = {Hand.ROCK: "scissors", Hand.SCISSORS: "paper", Hand.PAPER: "rock"}


def test_registered() -> None:
    assert protocol_type("trust-split") is TrustSplitProtocol
    assert isinstance(make_protocol("trust-split", "compact"), TrustSplitProtocol)


@given(st.integers(0, 10), st.sampled_from([FULL, COMPACT]))
def test_round_trip(claim: int, protocol: TrustSplitProtocol) -> None:
    reply = protocol.format(Kind.MOVE, claim)
    assert reply == f"<<proposal_start>> {claim} <<proposal_end>>"
    assert protocol.parse(Kind.MOVE, reply) == claim


@given(st.integers(0, 10), SPACE, SPACE, SPACE, SPACE)
def test_whitespace_is_allowed(claim: int, a: str, b: str, c: str, d: str) -> None:
    text = f"{a}<<proposal_start>>{b}{claim}{c}<<proposal_end>>{d}"
    assert FULL.parse_move(text) == claim


@given(st.text(max_size=30))
def test_message_round_trip(body: str) -> None:
    body = body.strip()
    assert FULL.parse(Kind.MESSAGE, FULL.format(Kind.MESSAGE, body)) == body


@pytest.mark.parametrize(
    "reply",
    [
        "<<proposal_start>> 11 <<proposal_end>>",
        "<<proposal_start>> -1 <<proposal_end>>",
        "<<proposal_start>> +5 <<proposal_end>>",
        "<<proposal_start>> 5.0 <<proposal_end>>",
        "<<proposal_start>> 05 <<proposal_end>>",
        "<<proposal_start>> five <<proposal_end>>",
        "<<proposal_start>> \u0665 <<proposal_end>>",  # Arabic-Indic five: not ASCII
        "<<proposal_start>> 5 5 <<proposal_end>>",
        "<<proposal_start>>  <<proposal_end>>",
        "5",
        "<<proposal_start>> 5",
        "5 <<proposal_end>>",
        "<<proposal_start>> 5 <<proposal_end>> thanks",
        "I keep <<proposal_start>> 5 <<proposal_end>>",
        "<<proposal_start>> 5 <<proposal_end>><<proposal_start>> 5 <<proposal_end>>",
        "<<message_start>> 5 <<message_end>>",
        "<proposal_start> 5 <proposal_end>",
    ],
)
def test_invalid_replies(reply: str) -> None:
    with pytest.raises(InvalidReply):
        FULL.parse_move(reply)


def test_move_replies_are_the_eleven_proposals() -> None:
    replies = FULL.move_replies()
    assert replies == COMPACT.move_replies()
    assert len(replies) == 11
    assert [FULL.parse_move(r) for r in replies] == list(range(11))
    assert FULL.allowed_replies(Kind.MESSAGE) is None


def test_default_move_is_keep_nothing() -> None:
    assert FULL.default(Kind.MOVE) == 0
    assert FULL.parse_move(FULL.format_move(FULL.default_move())) == 0


def test_other_coin_counts() -> None:
    protocol = TrustSplitProtocol(high=4)
    assert len(protocol.move_replies()) == 5
    with pytest.raises(InvalidReply):
        protocol.parse_move("<<proposal_start>> 5 <<proposal_end>>")
    game = TrustSplit(TrustSplitConfig(coins=4), 0)
    assert "4 coins" in protocol.rules(game, ALICE)
    with pytest.raises(ValueError, match="high=4"):
        FULL.rules(game, ALICE)  # a 10-coin parser on a 4-coin game would accept illegal claims


def test_human_shorthand() -> None:
    assert FULL.parse_human(Kind.MOVE, " 7 ") == 7
    assert FULL.parse_human(Kind.MOVE, "<<proposal_start>> 10 <<proposal_end>>") == 10
    for text in ("11", "-1", "seven", "7 coins", ""):
        with pytest.raises(InvalidReply):
            FULL.parse_human(Kind.MOVE, text)
    assert FULL.parse_human(Kind.MESSAGE, "My hand is rock.") == "My hand is rock."


def test_full_rules_state_the_game() -> None:
    game = TrustSplit(TrustSplitConfig(), 0)
    rules = FULL.rules(game, BOB)
    for phrase in (
        "You are Bob",
        "against Alice",
        "10 coins",
        "always different",
        "Rock beats scissors, scissors beats paper and paper beats rock",
        "upper hand values each coin at 10 points",
        "lower hand values each coin at 1 point.",
        "1 message each",
        "alternates every round",
        "integer from 0 to 10",
        "in proportion",
        "You see only your own hand",
        "<<message_start>> your message <<message_end>>",
        "<<proposal_start>> x <<proposal_end>>",
        "do not know how many rounds",
    ):
        assert phrase in rules, phrase
    told = TrustSplit(TrustSplitConfig(tell_horizon=True, rounds=7), 0)
    assert "lasts 7 rounds" in FULL.rules(told, ALICE)
    silent = TrustSplit(TrustSplitConfig(messages_per_player=0), 0)
    assert "no chat" in FULL.rules(silent, ALICE)


def test_compact_is_short() -> None:
    game = TrustSplit(TrustSplitConfig(tell_horizon=True, messages_per_player=2), 3)
    assert len(COMPACT.rules(game, ALICE)) < 150
    events = [
        RoundStart(9, Hand.SCISSORS, False, 10),
        RoundEnd(9, Hand.SCISSORS, True, 10, 10, 10 / 3, 100 / 3),
        RoundEnd(9, Hand.SCISSORS, False, 7, 5, 70 / 12, 70 / 12),
    ]
    for event in events:
        line = COMPACT.render_event(event, ALICE)
        assert 0 < len(line) < 60, line
    assert COMPACT.render_event(events[1], ALICE) == "other lower, kept 10; you kept 10, +33.33"


def test_full_events() -> None:
    start = RoundStart(0, Hand.ROCK, True, 10)
    assert FULL.render_event(start, ALICE) == (
        "Round 1 begins. Your hand is rock. You don't know Bob's hand yet. "
        "You send the first message."
    )
    end = RoundEnd(2, Hand.PAPER, False, 3, 1, 3.0, 3.0)
    assert FULL.render_event(end, BOB) == (
        "Round 3 result: Alice had the upper hand and proposed 1 coin; you proposed 3. "
        "You received 3 coins and got 3 points."
    )
    text = FULL.observation([start], Kind.MESSAGE, ALICE)
    assert text.endswith("(at most 500 characters).")


@pytest.mark.parametrize("hand", HANDS)
def test_claimed_hand_reads_first_person_claims(hand: Hand) -> None:
    others = [h for h in HANDS if h is not hand]
    for text in (
        f"My hand is {hand}.",
        f"my hand is {hand.upper()}",
        f"I have {hand}, what about you?",
        f"I've got the {hand}.",
        f"I'm {hand}",
        f"I am holding {hand}",
        f"{hand}",
        f"Hi! {hand.capitalize()} here.",
        f"My hand is {hand}, which beats your {BEATS_OF[hand]}.",
        f"Your hand is {others[0]}? My hand is {hand}.",
        f"I was dealt {hand}; I don't trust you though.",
    ):
        assert claimed_hand(text) is hand, text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hello, let's split fairly.",
        "rock or paper?",
        "My hand is rock. I have paper.",
        "My hand is not rock.",
        "I don't have scissors.",
        "Your hand is rock.",
        "You have paper, right?",
        "Rocks and papers everywhere",
    ],
)
def test_claimed_hand_none_or_ambiguous(text: str) -> None:
    assert claimed_hand(text) is None


@pytest.mark.parametrize("opponent", ["honest", "liar"])
def test_compact_prompts_restate_the_hand_and_the_others_claim_before_each_reply(opponent) -> None:
    """Played through the runner: before a message the compact prompt says ``you HAND``; before
    a claim ``you HAND, other says NAMED`` with the hand the other named this round (a liar's
    named hand, not its true one). The full style restates nothing."""
    from detente.policies.bots import make_bot
    from detente.rollout.runner import Match, play

    for protocol in (COMPACT, FULL):
        game = TrustSplit(TrustSplitConfig(rounds=4), seed=3)
        bots = (make_bot("trust-split", "honest"), make_bot("trust-split", opponent))
        (record,) = play([Match(game, bots, "g")], protocol)
        for turn in record.seats[0].turns:
            hand = record.infos[turn.round]["hands"][0]
            last_lines = turn.prompt.split("\n")[-2:]
            if protocol is FULL:
                assert not any(line.startswith("you ") for line in last_lines)
            elif turn.kind == "message":
                assert last_lines == [f"you {hand}", "msg?"]
            else:
                other_turns = [t for t in record.seats[1].turns if t.round == turn.round]
                named = claimed_hand(str(other_turns[0].action)).value
                assert last_lines == [f"you {hand}, other says {named}", "keep?"]
