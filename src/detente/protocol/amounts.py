"""The text face shared by games whose move is one whole amount (coins kept, given, tons
caught): ``<<proposal_start>> x <<proposal_end>>``; N-player ones (:class:`GroupProtocol`) also
share chat lines that name their sender and the prose of their rules.

A move reply is exactly ``<<proposal_start>> x <<proposal_end>>`` with ``x`` an integer from 0 to
``high``, in ASCII digits without sign or leading zeros; whitespace around the markers and around
``x`` is allowed. Anything else raises ``InvalidReply``. People may type the bare number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from detente.games.base import Event, Game, GameConfig, Kind, MessageEvent, player_name
from detente.protocol.base import (
    MAX_MESSAGE_CHARS,
    MESSAGE_END,
    MESSAGE_START,
    PROPOSAL_END,
    PROPOSAL_START,
    InvalidReply,
    Protocol,
    Style,
    plural,
)

_INTEGER = r"(0|[1-9][0-9]*)"  # ASCII digits only: int() would also accept other scripts' digits
REPLY_PATTERN = re.compile(
    rf"\s*{re.escape(PROPOSAL_START)}\s*{_INTEGER}\s*{re.escape(PROPOSAL_END)}\s*"
)
SHORTHAND_PATTERN = re.compile(rf"\s*{_INTEGER}\s*")


def names(seats: Sequence[int]) -> str:
    """``Bob``, ``Bob and Carol``, ``Bob, Carol and Dave``."""
    named = [player_name(s) for s in seats]
    return named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"


class AmountProtocol(Protocol):
    """Parses and formats amounts ``0..high``; a subclass names the amount (``unit``: the word
    in hints and errors), its default ``high`` (the default config's), and may narrow
    ``move_replies`` to what is legal now."""

    unit: ClassVar[str]
    default_high: ClassVar[int]
    bound_name: ClassVar[str]  # the config option that bounds the amount (e.g. "endowment")

    def __init__(self, style: Style | str = Style.FULL, high: int | None = None) -> None:
        super().__init__(style)
        high = self.default_high if high is None else high
        if high < 0:
            raise ValueError(f"the largest amount must be at least 0, got {high}")
        self.high = high

    @classmethod
    def for_config(cls, style: Style | str, config: GameConfig | None) -> AmountProtocol:
        """Parses amounts in 0..the config's ``bound_name`` option (the default's without one)."""
        bound = getattr(config, cls.bound_name, None) if config is not None else None
        return cls(style, bound)

    def check_bound(self, config: GameConfig) -> None:
        """Refuse a game whose bound is not the one this protocol parses."""
        bound = getattr(config, self.bound_name)
        if bound != self.high:
            raise ValueError(
                f"the game's {self.bound_name} option is {bound} but the protocol parses "
                f"0..{self.high}; "
                f"build {type(self).__name__}(high={bound})"
            )

    def _amount(self, digits: str) -> int:
        amount = int(digits)
        if amount > self.high:
            raise InvalidReply(f"a proposal must be from 0 to {self.high}, got {amount}")
        return amount

    def parse_move(self, text: str) -> int:
        match = REPLY_PATTERN.fullmatch(text)
        if match is None:
            raise InvalidReply(
                f"expected {PROPOSAL_START} x {PROPOSAL_END} with x in 0..{self.high}"
            )
        return self._amount(match.group(1))

    def format_move(self, move: int) -> str:
        return f"{PROPOSAL_START} {move} {PROPOSAL_END}"

    def move_replies(self, events: Sequence[Event] = ()) -> tuple[str, ...]:
        return tuple(self.format_move(amount) for amount in range(self.high + 1))

    def human_hint(self, kind: Kind) -> str:
        if kind is Kind.MESSAGE:
            return super().human_hint(kind)
        return f"type the number of {self.unit}, 0 to {self.high}"

    def parse_move_shorthand(self, text: str) -> int:
        match = SHORTHAND_PATTERN.fullmatch(text)
        if match is None:
            raise InvalidReply(f"{text!r} is not a number of {self.unit}")
        return self._amount(match.group(1))


class GroupProtocol(AmountProtocol):
    """An amount game of N players: chat lines name their sender, and the full-style rules share
    their prose (the game names its actors and moves)."""

    # ---- prose shared by the full-style rules (the game names its actors and moves) ---------------
    @staticmethod
    def horizon_sentence(game: Game) -> str:
        """Whether the players know the game's length (full style)."""
        if game.config.tell_horizon:
            return f"The game lasts {game.num_rounds} rounds."
        return "You do not know how many rounds the game lasts."

    @staticmethod
    def chat_rules(step: int, before: str, talk: str, actor: str, quota: int, players: int) -> str:
        """Rule ``step`` of a round: the chat in seat order, ``quota`` messages each (none: no
        chat). ``before`` names the move ("contributing"), ``talk`` the chat ("chat"),
        ``actor`` a player ("fisherman")."""
        if not quota:
            return f"{step}. There is no chat.\n"
        order = ", ".join(player_name(p) for p in range(players))
        return (
            f"{step}. Before {before} you {talk}. One {actor} sends the first message and the "
            f"others follow in turn (in the order {order}, starting again from the first); "
            f"the next {actor} starts the next round. Each of you sends "
            f"{plural(quota, 'message')} per round (at most {MAX_MESSAGE_CHARS} characters "
            "per message).\n"
        )

    @staticmethod
    def format_rules(quota: int, moves: str, move: str) -> str:
        """How to write messages (with a chat) and moves: ``moves`` and ``move`` name them."""
        if not quota:
            return f"Write your {move} as {PROPOSAL_START} x {PROPOSAL_END}."
        return (
            f"Write messages as {MESSAGE_START} your message {MESSAGE_END} and {moves} "
            f"as {PROPOSAL_START} x {PROPOSAL_END}."
        )

    @staticmethod
    def opener_sentence(opener: int | None, player: int) -> str:
        """`` You send the first message.`` / `` Bob sends …`` (full style; empty without chat)."""
        if opener is None:
            return ""
        who = "You send" if opener == player else f"{player_name(opener)} sends"
        return f" {who} the first message."

    def render_message(self, event: MessageEvent) -> str:
        """``Bob says: ...`` in both styles: with several co-players the sender matters."""
        return f"{player_name(event.sender)} says: {event.text}"
