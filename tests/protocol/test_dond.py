"""Deal or No Deal text protocol: messages, the shared proposal format, stock checks, styles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detente.games import ALICE, BOB, IllegalAction, Kind, make_config, make_game
from detente.games.items import Items
from detente.protocol import InvalidReply, Style, make_protocol
from detente.protocol.items import compact_items, find_items, format_values

counts = st.integers(0, 10)
items = st.builds(Items, counts, counts, counts)


@pytest.mark.parametrize("style", list(Style))
@given(move=items, pad=st.sampled_from(["", " ", "\n"]))
def test_proposal_round_trip_same_format_as_split(style, move, pad):
    protocol = make_protocol("dond", style)
    text = protocol.format(Kind.MOVE, move)
    assert text == make_protocol("split", style).format(Kind.MOVE, move)
    assert protocol.parse(Kind.MOVE, pad + text + pad) == move


@given(body=st.text(max_size=500).map(str.strip).filter(lambda b: "<<message_end>>" not in b))
def test_message_round_trip(body):
    protocol = make_protocol("dond")
    assert protocol.parse(Kind.MESSAGE, protocol.format(Kind.MESSAGE, body)) == body


@pytest.mark.parametrize(
    "reply",
    [
        "I want the hats",
        "<<message_start>> hi",
        "<<message_start>> " + "x" * 501 + " <<message_end>>",
        "<<message_start>> a <<message_end>> b",
    ],
)
def test_invalid_messages_raise(reply):
    with pytest.raises(InvalidReply):
        make_protocol("dond").parse(Kind.MESSAGE, reply)


@pytest.mark.parametrize(
    "reply",
    ["Proposal: 11 hats, 0 books, 0 balls", "Proposal: 1 hats, 2 books", "2 0 1", "<A>", ""],
)
def test_invalid_proposals_raise(reply):
    with pytest.raises(InvalidReply):
        make_protocol("dond").parse(Kind.MOVE, reply)


def test_a_proposal_above_the_stock_parses_and_the_game_rejects_it():
    """The protocol checks the format only; the stock is checked once, by the game."""
    protocol = make_protocol("dond")
    game = make_game("dond", None, 0)  # stock (4, 2, 1)
    game.act({BOB: "hi"})
    game.act({ALICE: "hi"})
    move = protocol.parse(Kind.MOVE, "Proposal: 5 hats, 0 books, 0 balls")
    assert move == Items(5, 0, 0)
    with pytest.raises(IllegalAction):
        game.act({ALICE: move, BOB: protocol.default_move()})


def test_no_finite_move_list_and_a_default_legal_for_every_stock():
    protocol = make_protocol("dond")
    assert protocol.allowed_replies(Kind.MOVE) is None  # no round observed yet
    assert protocol.allowed_replies(Kind.MESSAGE) is None
    assert protocol.default(Kind.MOVE) == Items(0, 0, 0)
    assert protocol.default(Kind.MESSAGE) == ""


def test_human_input():
    protocol = make_protocol("dond")
    assert protocol.parse_human(Kind.MOVE, "2 0 1") == Items(2, 0, 1)
    assert protocol.parse_human(Kind.MESSAGE, "I want the hats") == "I want the hats"
    with pytest.raises(InvalidReply):
        protocol.parse_human(Kind.MOVE, "two hats")


def test_find_items_reads_the_last_bundle_in_free_text():
    assert find_items("I want to keep 2 hats, 0 books, 1 balls.") == Items(2, 0, 1)
    assert find_items("not 1 hats, 1 books, 1 balls but 10 hats, 3 books, 0 balls!") == Items(
        10, 3, 0
    )
    assert find_items("I keep 110 hats, 3 books, 0 balls") is None
    assert find_items("I want the hats") is None


def test_rules_full_and_compact():
    game = make_game("dond", make_config("dond", {"messages_per_player": 2}), 0)
    full = make_protocol("dond", Style.FULL).rules(game, ALICE)
    compact = make_protocol("dond", Style.COMPACT).rules(game, ALICE)
    assert full.startswith("You are Alice") and "Bob" in full
    assert "5 to 7 items" in full and "adding up to 10" in full and "2 each" in full
    assert "<<message_start>>" in full and "Proposal: x hats, y books, z balls" in full
    assert "complementary" in full and "0 points" in full
    assert "<<message_start>>" in compact and "Proposal: x hats, y books, z balls" in compact
    assert len(compact) < 150 < len(full)
    silent = make_game("dond", make_config("dond", {"messages_per_player": 0}), 0)
    silent_rules = make_protocol("dond").rules(silent, BOB)
    assert "There are no messages." in silent_rules and "<<message_start>>" not in silent_rules


@pytest.mark.parametrize("style", list(Style))
def test_observations(style):
    protocol = make_protocol("dond", style)
    game = make_game("dond", None, 0)  # stock (4, 2, 1), values (7, 2, 1) / (6, 4, 0), Bob opens
    bob_first = protocol.observation(game.events(BOB), Kind.MESSAGE, BOB)
    game.act({BOB: "I want 2 hats, 2 books, 0 balls"})
    alice_reply = protocol.observation(game.events(ALICE), Kind.MESSAGE, ALICE)
    game.act({ALICE: "ok"})
    game.act({ALICE: Items(2, 0, 1), BOB: Items(2, 2, 0)})
    game.act({ALICE: "again"})  # round 2: Alice opens
    game.act({BOB: "no"})
    game.act({ALICE: Items(0, 0, 0), BOB: Items(0, 0, 0)})
    history = protocol.observation(game.events(ALICE), Kind.MESSAGE, ALICE).split("\n")
    if style is Style.COMPACT:
        assert bob_first == "stock 4 2 1 v 6 4 0 you first\nmsg?"
        assert alice_reply == (
            "stock 4 2 1 v 7 2 1 other first\nother says: I want 2 hats, 2 books, 0 balls\nmsg?"
        )
        assert "you 2 0 1 other 2 2 0 | deal 15" in history
        assert "you 0 0 0 other 0 0 0 | no deal" in history
        assert all(len(line) < 60 for line in history)
    else:
        assert bob_first.split("\n") == [
            "Round 1. Stock: 4 hats, 2 books, 1 balls. Your values per unit: hats 6, books 4, "
            "balls 0. You speak first.",
            "Your message (<<message_start>> ... <<message_end>>):",
        ]
        assert "Bob speaks first." in alice_reply
        assert "Bob says: I want 2 hats, 2 books, 0 balls" in alice_reply
        assert (
            "Round 1 result: you proposed to keep 2 hats, 0 books, 1 balls; Bob proposed to "
            "keep 2 hats, 2 books, 0 balls. Deal: you got 15 points." in history
        )
        assert any(line.endswith("No deal: both players got 0 points.") for line in history)
        assert history[-1] == "Your message (<<message_start>> ... <<message_end>>):"


@pytest.mark.parametrize("style", list(Style))
def test_the_authors_rules_are_told_and_the_other_values_shown(style):
    protocol = make_protocol("dond", style)
    for rules in ("detente", "authors"):
        game = make_game("dond", make_config("dond", {"rules": rules}), 0)
        text = protocol.rules(game, ALICE)
        game.act({BOB: "hi"})
        game.act({ALICE: "hi"})
        game.act({ALICE: Items(0, 0, 0), BOB: Items(0, 0, 0)})
        end = protocol.render_event(game.events(ALICE)[-2], ALICE)
        bob = game.values[BOB]
        values = format_values(bob) if style is Style.FULL else f"v {compact_items(bob)}"
        assert (values in end) == (rules == "authors")
        if style is Style.FULL:
            said = ("once per game" in text, "some types may be missing" in text)
            assert said == ((True, True) if rules == "authors" else (False, False))
