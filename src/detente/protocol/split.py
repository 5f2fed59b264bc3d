"""Split text protocol: public values, one ``Proposal: x hats, y books, z balls`` per round.

``move_replies`` lists all 11³ = 1331 canonical proposals (counts 0..10): the format is finite and
a list of that size is cheap for constrained decoding. With ``quantity < 10`` some of them are
over the quantity; the game rejects those (``IllegalAction``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from detente.games.base import PLAYER_NAMES, Event, Game
from detente.games.items import MAX_UNITS, Items, bundles
from detente.games.split import HIGH_VALUE, LOW_VALUE, RoundEnd, RoundStart, Split
from detente.protocol.base import Style, number
from detente.protocol.items import (
    PROPOSAL_TEMPLATE,
    ItemsProtocol,
    compact_items,
    format_items,
    format_values,
)


class SplitProtocol(ItemsProtocol):
    game: ClassVar[str] = Split.name

    def rules(self, game: Game, player: int) -> str:
        assert isinstance(game, Split)
        q = game.config.quantity
        if self.style is Style.COMPACT:
            horizon = f" {game.num_rounds} rounds." if game.config.tell_horizon else ""
            return (
                f"split {q} hats,books,balls. values public. claims over {q} scaled down. "
                f"pts=units*value.{horizon} reply {PROPOSAL_TEMPLATE}"
            )
        other = PLAYER_NAMES[1 - player]
        return (
            f"You are {PLAYER_NAMES[player]}, playing a repeated game against {other}."
            f"{self.horizon(game)}\n"
            "Setup:\n"
            f"1. Every round there are {q} hats, {q} books and {q} balls to split between you.\n"
            f"2. Every round each player values each item type at {LOW_VALUE} or {HIGH_VALUE} "
            "points per unit, drawn at random. The two players' values always add up to the "
            "same total, and they differ on at least one item type.\n"
            "3. You see both players' values.\n"
            "Protocol:\n"
            "1. There are no messages. Both players propose at the same time how many units "
            f"of each item type they keep (whole numbers from 0 to {q}).\n"
            f"2. If the two claims on a type add up to at most {q}, each player gets what it "
            f"claimed (the rest is lost); if they add up to more, the {q} units are shared in "
            "proportion to the claims.\n"
            "3. Your points for the round = the units you get of each type × your value for "
            "that type, added over the three types.\n"
            "4. After each round you see both proposals and both players' points.\n"
            "Your goal: get as many points as possible over the whole game.\n"
            f'Reply with exactly "{PROPOSAL_TEMPLATE}" (x, y, z: the units you keep) '
            "and nothing else."
        )

    def render_event(self, event: Event, player: int) -> str:
        other = PLAYER_NAMES[1 - player]
        if isinstance(event, RoundStart):
            if self.style is Style.COMPACT:
                return (
                    f"v {compact_items(event.own_values)} other {compact_items(event.other_values)}"
                )
            return (
                f"Round {event.round + 1}. Your values per unit: "
                f"{format_values(event.own_values)}. {other}'s values per unit: "
                f"{format_values(event.other_values)}."
            )
        if isinstance(event, RoundEnd):
            if self.style is Style.COMPACT:
                return (
                    f"you {compact_items(event.own_proposal)} other "
                    f"{compact_items(event.other_proposal)} | "
                    f"{number(event.own_reward)} {number(event.other_reward)}"
                )
            return (
                f"Round {event.round + 1} result: you proposed {format_items(event.own_proposal)}; "
                f"{other} proposed {format_items(event.other_proposal)}. You received "
                f"{format_items(event.own_units)} and got {number(event.own_reward)} points; "
                f"{other} got {number(event.other_reward)} points."
            )
        raise TypeError(f"not a Split event: {event!r}")

    def move_replies(self, events: Sequence[Event] = ()) -> tuple[str, ...]:
        return tuple(self.format_move(b) for b in bundles(Items(MAX_UNITS, MAX_UNITS, MAX_UNITS)))
