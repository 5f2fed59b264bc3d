"""Split text protocol: the one proposal format, round trips, strictness, both styles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detente.games import Kind, make_config, make_game
from detente.games.items import Items, bundles
from detente.protocol import InvalidReply, Style, make_protocol

counts = st.integers(0, 10)
items = st.builds(Items, counts, counts, counts)
pads = st.sampled_from(["", " ", "\n", " \n\t"])


@pytest.mark.parametrize("style", list(Style))
@given(move=items, pad=pads)
def test_round_trip(style, move, pad):
    protocol = make_protocol("split", style)
    text = protocol.format(Kind.MOVE, move)
    assert text == f"Proposal: {move.hats} hats, {move.books} books, {move.balls} balls"
    assert protocol.parse(Kind.MOVE, pad + text + pad) == move


@given(move=items, data=st.data())
def test_one_character_edits_are_rejected_or_canonical(move, data):
    """Insert or delete one character of a canonical reply: what still parses is canonical."""
    protocol = make_protocol("split")
    text = protocol.format(Kind.MOVE, move)
    i = data.draw(st.integers(0, len(text) - 1))
    if data.draw(st.booleans()):
        edited = text[:i] + data.draw(st.sampled_from(list("0123456789 ,.:sxP\n"))) + text[i:]
    else:
        edited = text[:i] + text[i + 1 :]
    try:
        parsed = protocol.parse(Kind.MOVE, edited)
    except InvalidReply:
        return
    assert protocol.format(Kind.MOVE, parsed) == edited.strip()


@pytest.mark.parametrize(
    "reply",
    [
        "Proposal: 11 hats, 0 books, 0 balls",
        "Proposal: 05 hats, 0 books, 0 balls",
        "Proposal: -1 hats, 0 books, 0 balls",
        "Proposal: 1.5 hats, 0 books, 0 balls",
        "proposal: 1 hats, 2 books, 3 balls",
        "Proposal: 1 hat, 2 books, 3 balls",
        "Proposal: 1 hats, 2 books",
        "Proposal: 2 books, 1 hats, 3 balls",
        "Proposal: 1 hats, 2 books, 3 balls.",
        "Proposal:  1 hats, 2 books, 3 balls",
        "Proposal: 1 hats 2 books 3 balls",
        "<<proposal_start>> Proposal: 1 hats, 2 books, 3 balls <<proposal_end>>",
        "I keep 1 hats, 2 books, 3 balls",
        "Proposal: 1 hats, 2 books, 3 balls Proposal: 1 hats, 2 books, 3 balls",
        "1 2 3",
        "",
    ],
)
def test_invalid_replies_raise(reply):
    with pytest.raises(InvalidReply):
        make_protocol("split").parse(Kind.MOVE, reply)


def test_move_replies_are_every_proposal_once():
    protocol = make_protocol("split")
    replies = protocol.allowed_replies(Kind.MOVE)
    assert replies is not None and len(replies) == len(set(replies)) == 11**3
    assert sorted(protocol.parse(Kind.MOVE, r) for r in replies) == bundles(Items(10, 10, 10))


def test_default_move_keeps_nothing_and_is_legal():
    protocol = make_protocol("split")
    assert protocol.default(Kind.MOVE) == Items(0, 0, 0)
    game = make_game("split", make_config("split", {"quantity": 1}), 0)
    game.act({0: protocol.default_move(), 1: protocol.default_move()})
    assert game.rewards == [(0.0, 0.0)]


def test_human_shorthand():
    protocol = make_protocol("split")
    assert protocol.parse_human(Kind.MOVE, " 10 0 5 ") == Items(10, 0, 5)
    assert protocol.parse_human(Kind.MOVE, "Proposal: 1 hats, 2 books, 3 balls") == Items(1, 2, 3)
    for bad in ["10 0", "11 0 0", "1 2 3 4", "a b c", "1, 2, 3", "１ 2 3"]:
        with pytest.raises(InvalidReply):
            protocol.parse_human(Kind.MOVE, bad)
    assert "10 0 5" in protocol.human_hint(Kind.MOVE)


def test_rules_full_and_compact():
    game = make_game("split", make_config("split", {"tell_horizon": True}), 0)
    full = make_protocol("split", Style.FULL).rules(game, 1)
    compact = make_protocol("split", Style.COMPACT).rules(game, 1)
    assert full.startswith("You are Bob") and "Alice" in full
    assert "10 hats, 10 books and 10 balls" in full and "1 or 10" in full
    assert "The game lasts 10 rounds." in full
    assert "Proposal: x hats, y books, z balls" in full
    assert "Proposal: x hats, y books, z balls" in compact and "10 rounds" in compact
    assert len(compact) < 150 < len(full)
    hidden = make_protocol("split").rules(make_game("split", None, 0), 0)
    assert "You do not know how many rounds" in hidden


@pytest.mark.parametrize("style", list(Style))
def test_observation_shows_both_values_then_the_result(style):
    protocol = make_protocol("split", style)
    game = make_game("split", None, 0)
    a, b = game.values
    game.act({0: Items(10, 0, 7), 1: Items(5, 10, 7)})
    text = protocol.observation(game.events(0), Kind.MOVE, 0)
    lines = text.split("\n")
    if style is Style.COMPACT:
        assert lines[0] == f"v {a.hats} {a.books} {a.balls} other {b.hats} {b.books} {b.balls}"
        assert lines[1].startswith("you 10 0 7 other 5 10 7 | ")
        assert lines[-1] == "proposal?"
        assert all(len(line) < 60 for line in lines)
    else:
        assert lines[0] == (
            f"Round 1. Your values per unit: hats {a.hats}, books {a.books}, balls {a.balls}. "
            f"Bob's values per unit: hats {b.hats}, books {b.books}, balls {b.balls}."
        )
        assert (
            "you proposed 10 hats, 0 books, 7 balls; Bob proposed 5 hats, 10 books, 7 balls" in text
        )
        assert "You received 6.67 hats, 0 books, 5 balls" in text
        assert lines[-1] == "Your proposal (Proposal: x hats, y books, z balls):"


def test_split_has_no_messages():
    with pytest.raises(ValueError):
        make_protocol("split").instruction(Kind.MESSAGE)
