"""Deal or No Deal text protocol: messages in markers, then ``Proposal: x hats, y books, z balls``.

The parser checks the format only (counts 0..10): a proposal above the round's stock parses, the
game rejects it with ``IllegalAction`` and the rollout counts it as an invalid reply.
``move_replies(events)`` lists the legal proposals of the current round's stock (from the seat's
latest round-start event), so a constrained sample is always legal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from detente.games.base import PLAYER_NAMES, Event, Game, Kind
from detente.games.dond import VALUE_TOTAL, Dond, DondRules, RoundEnd, RoundStart
from detente.games.items import bundles
from detente.protocol.base import MAX_MESSAGE_CHARS, MESSAGE_END, MESSAGE_START, Style, number
from detente.protocol.items import (
    PROPOSAL_TEMPLATE,
    ItemsProtocol,
    compact_items,
    format_items,
    format_values,
)


class DondProtocol(ItemsProtocol):
    game: ClassVar[str] = Dond.name

    def rules(self, game: Game, player: int) -> str:
        assert isinstance(game, Dond)
        c = game.config
        m = c.messages_per_player
        if self.style is Style.COMPACT:
            horizon = f" {game.num_rounds} rounds." if c.tell_horizon else ""
            return (
                f"{m} msg each then claims; deal iff claims sum to stock: pts=kept*value, "
                f"else 0.{horizon} {MESSAGE_START}..{MESSAGE_END} {PROPOSAL_TEMPLATE}"
            )
        other = PLAYER_NAMES[1 - player]
        authors = c.rules is DondRules.AUTHORS
        stock_types = "some types may be missing" if authors else "at least one of each type"
        drawn = (
            f"drawn at random once per game and kept every round. You know only your own "
            f"values until the end of the first round; after every round you are shown "
            f"{other}'s values."
            if authors
            else "drawn at random every round. You know only your own values."
        )
        seen = f"your points and {other}'s values" if authors else "your points"
        talk = (
            f"1. Every round you take turns sending messages, {m} each; the first speaker "
            "alternates from round to round.\n"
            if m
            else "1. There are no messages.\n"
        )
        message_format = (
            f"To send a message, reply {MESSAGE_START} your message {MESSAGE_END} (at most "
            f"{MAX_MESSAGE_CHARS} characters). "
            if m
            else ""
        )
        return (
            f"You are {PLAYER_NAMES[player]}, negotiating with {other} in a repeated game of "
            f"Deal or No Deal.{self.horizon(game)}\n"
            "Setup:\n"
            "1. Every round there is a stock of hats, books and balls to divide between you: "
            f"{c.min_stock} to {c.max_stock} items in all, {stock_types}.\n"
            "2. Each player has private values: points per unit of each item type, whole "
            f"numbers adding up to {VALUE_TOTAL} over the three types, {drawn} Every type is "
            "worth something to at least one of you, and at least one type is worth something "
            "to both.\n"
            "Protocol:\n"
            f"{talk}"
            "2. Then both players propose at the same time what they keep: how many units of "
            "each type, never more than the stock.\n"
            "3. If the two proposals are exactly complementary (together they take the whole "
            "stock of every type), the deal is made and your points are the units you keep × "
            "your value for them, added over the types. Otherwise there is no deal and both "
            "players get 0 points.\n"
            "4. After each round you see both proposals, whether there was a deal, and "
            f"{seen}.\n"
            "Your goal: get as many points as possible over the whole game.\n"
            f'{message_format}To propose, reply with exactly "{PROPOSAL_TEMPLATE}" (x, y, z: '
            "the units you keep) and nothing else."
        )

    def render_event(self, event: Event, player: int) -> str:
        other = PLAYER_NAMES[1 - player]
        if isinstance(event, RoundStart):
            if self.style is Style.COMPACT:
                first = "you" if event.opens else "other"
                return (
                    f"stock {compact_items(event.stock)} v {compact_items(event.own_values)} "
                    f"{first} first"
                )
            first = "You" if event.opens else other
            return (
                f"Round {event.round + 1}. Stock: {format_items(event.stock)}. Your values per "
                f"unit: {format_values(event.own_values)}. {first} speak"
                f"{'' if event.opens else 's'} first."
            )
        if isinstance(event, RoundEnd):
            if self.style is Style.COMPACT:
                outcome = f"deal {number(event.own_reward)}" if event.agreed else "no deal"
                values = (
                    "" if event.other_values is None else f" | v {compact_items(event.other_values)}"
                )
                return (
                    f"you {compact_items(event.own_proposal)} other "
                    f"{compact_items(event.other_proposal)} | {outcome}{values}"
                )
            outcome = (
                f"Deal: you got {number(event.own_reward)} points."
                if event.agreed
                else "No deal: both players got 0 points."
            )
            values = (
                ""
                if event.other_values is None
                else f" {other}'s values per unit: {format_values(event.other_values)}."
            )
            return (
                f"Round {event.round + 1} result: you proposed to keep "
                f"{format_items(event.own_proposal)}; {other} proposed to keep "
                f"{format_items(event.other_proposal)}. {outcome}{values}"
            )
        raise TypeError(f"not a Deal or No Deal event: {event!r}")

    def move_replies(self, events: Sequence[Event] = ()) -> tuple[str, ...] | None:
        starts = [e for e in events if isinstance(e, RoundStart)]
        if not starts:
            return None
        return tuple(self.format_move(b) for b in bundles(starts[-1].stock))

    def instruction(self, kind: Kind) -> str:
        if kind is Kind.MOVE:
            return super().instruction(kind)
        if self.style is Style.COMPACT:
            return "msg?"
        return f"Your message ({MESSAGE_START} ... {MESSAGE_END}):"
