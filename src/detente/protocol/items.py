"""Text of item bundles, shared by the multi-item games (Split, Deal or No Deal).

A move reply is exactly ``Proposal: x hats, y books, z balls`` (surrounding whitespace allowed):
the units the player keeps, in the fixed order hats, books, balls, each written as an integer
``0..MAX_UNITS`` without leading zeros, the plural noun always. There are no
``<<proposal_start>>`` markers: the ``Proposal:`` prefix and the fixed wording already delimit the
reply. Whether the counts fit the round (quantity, stock) is the game's check, not the text's.
People may type three integers instead: ``x y z``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from detente.games.base import Game, Kind
from detente.games.items import ITEM_TYPES, MAX_UNITS, Items
from detente.protocol.base import InvalidReply, Protocol, Style, number

PROPOSAL_TEMPLATE = "Proposal: x hats, y books, z balls"
_COUNT = "|".join(str(n) for n in range(MAX_UNITS, -1, -1))  # longest first: 10|9|...|0
_ITEMS = ", ".join(rf"(?<!\d)({_COUNT}) {name}" for name in ITEM_TYPES)
PROPOSAL_PATTERN = re.compile(rf"\s*Proposal: {_ITEMS}\s*")
ITEMS_PATTERN = re.compile(_ITEMS)
SHORTHAND_PATTERN = re.compile(r"\s*(\d{1,2})\s+(\d{1,2})\s+(\d{1,2})\s*", re.ASCII)


def format_items(counts: Sequence[float]) -> str:
    """``x hats, y books, z balls``."""
    return ", ".join(f"{number(c)} {name}" for c, name in zip(counts, ITEM_TYPES, strict=True))


def format_values(values: Sequence[float]) -> str:
    """``hats v1, books v2, balls v3``."""
    return ", ".join(f"{name} {number(v)}" for v, name in zip(values, ITEM_TYPES, strict=True))


def compact_items(counts: Sequence[float]) -> str:
    """``x y z`` (compact style)."""
    return " ".join(number(c) for c in counts)


def find_items(text: str) -> Items | None:
    """The last ``x hats, y books, z balls`` written anywhere in free text (e.g. a message)."""
    matches = ITEMS_PATTERN.findall(text)
    return Items(*(int(c) for c in matches[-1])) if matches else None


class ItemsProtocol(Protocol):
    """The move side shared by the item games.

    Default move: keep nothing, ``(0, 0, 0)``; it is legal in every round of both games, and a
    seat whose reply stays invalid forfeits its share of the round.
    """

    def horizon(self, game: Game) -> str:
        """The full-style sentence about the number of rounds."""
        if game.config.tell_horizon:
            return f" The game lasts {game.num_rounds} rounds."
        return " You do not know how many rounds the game lasts."

    def instruction(self, kind: Kind) -> str:
        if kind is not Kind.MOVE:
            raise ValueError(f"{self.game} asks for no {kind.value}")
        if self.style is Style.COMPACT:
            return "proposal?"
        return f"Your proposal ({PROPOSAL_TEMPLATE}):"

    def parse_move(self, text: str) -> Items:
        match = PROPOSAL_PATTERN.fullmatch(text)
        if match is None:
            raise InvalidReply(
                f"expected exactly {PROPOSAL_TEMPLATE!r} with integers 0..{MAX_UNITS}"
            )
        return Items(*(int(c) for c in match.groups()))

    def format_move(self, move: Items) -> str:
        return f"Proposal: {format_items(move)}"

    def default_move(self) -> Items:
        return Items(0, 0, 0)

    def human_hint(self, kind: Kind) -> str:
        if kind is Kind.MESSAGE:
            return super().human_hint(kind)
        return f"type how many hats, books and balls you keep, e.g. 10 0 5 (or {PROPOSAL_TEMPLATE})"

    def parse_move_shorthand(self, text: str) -> Items:
        match = SHORTHAND_PATTERN.fullmatch(text)
        if match is None or any(int(c) > MAX_UNITS for c in match.groups()):
            raise InvalidReply(f"expected three integers 0..{MAX_UNITS} (hats books balls)")
        return Items(*(int(c) for c in match.groups()))
