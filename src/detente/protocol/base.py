"""A game's text face: events → chat text, reply formats (regexes), reply → action.

Two prompt styles: ``full`` (natural language close to the paper's prompts, for instruct LLMs)
and ``compact`` (short lines, for the small models the project trains itself). A protocol never
guesses: a reply that does not match the format raises ``InvalidReply``; the rollout decides
what to do (re-sample, constrain, or fall back to the declared default with a flag).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, ClassVar

from detente.games.base import Event, Game, GameConfig, Kind, MessageEvent, player_name

MESSAGE_START, MESSAGE_END = "<<message_start>>", "<<message_end>>"
PROPOSAL_START, PROPOSAL_END = "<<proposal_start>>", "<<proposal_end>>"
MAX_MESSAGE_CHARS = 500


def number(x: float) -> str:
    """A reward or share as people write it: at most two decimals, no trailing zeros."""
    return f"{round(x, 2):g}"


def plural(n: float, word: str) -> str:
    text = number(n)
    return f"{text} {word}" + ("" if text == "1" else "s")


class Style(StrEnum):
    FULL = "full"
    COMPACT = "compact"


class InvalidReply(ValueError):
    """A reply that does not match the required format."""


MESSAGE_PATTERN = re.compile(
    rf"\s*{re.escape(MESSAGE_START)}(?P<text>.*?){re.escape(MESSAGE_END)}\s*", re.DOTALL
)


def parse_message(text: str) -> str:
    """The message inside the markers; at most ``MAX_MESSAGE_CHARS`` characters."""
    match = MESSAGE_PATTERN.fullmatch(text)
    if match is None:
        raise InvalidReply(f"expected {MESSAGE_START} ... {MESSAGE_END}")
    body = match.group("text").strip()
    if len(body) > MAX_MESSAGE_CHARS:
        raise InvalidReply(f"message longer than {MAX_MESSAGE_CHARS} characters")
    return body


def format_message(body: str) -> str:
    return f"{MESSAGE_START} {body} {MESSAGE_END}"


class Protocol(ABC):
    """Text protocol of one game. Subclasses render their events and parse their moves."""

    game: ClassVar[str]

    def __init__(self, style: Style | str = Style.FULL) -> None:
        self.style = Style(style)

    @classmethod
    def for_config(cls, style: Style | str, config: GameConfig | None) -> Protocol:
        """The protocol for a game with these options (default: options don't matter)."""
        return cls(style)

    # ---- prompts ---------------------------------------------------------------------------------
    @abstractmethod
    def rules(self, game: Game, player: int) -> str:
        """The system prompt: rules of the game as seen by ``player``."""

    @abstractmethod
    def render_event(self, event: Event, player: int) -> str:
        """One observed event as text (messages are handled here in the base class)."""

    @abstractmethod
    def instruction(self, kind: Kind) -> str:
        """What the player must reply now, with the exact format."""

    def message_instruction(self) -> str:
        """The full style's request for a message."""
        return (
            f"Send your message now as {MESSAGE_START} your message {MESSAGE_END} "
            f"(at most {MAX_MESSAGE_CHARS} characters)."
        )

    def render_message(self, event: MessageEvent) -> str:
        if self.style is Style.COMPACT:
            return f"other says: {event.text}"
        return f"{player_name(event.sender)} says: {event.text}"

    def observation(
        self,
        events: Sequence[Event],
        kind: Kind,
        player: int,
        history: Sequence[Event] | None = None,
    ) -> str:
        """The user message for a decision: the events since the last one, the ``reminder`` of
        what the whole ``history`` (every event the seat observed, if given) holds for this
        decision, then the instruction."""
        lines = [
            self.render_message(e) if isinstance(e, MessageEvent) else self.render_event(e, player)
            for e in events
        ]
        if history is not None:
            lines.append(self.reminder(history, kind, player))
        lines.append(self.instruction(kind))
        return "\n".join(line for line in lines if line)

    def reminder(self, history: Sequence[Event], kind: Kind, player: int) -> str:
        """A line restating, right before the instruction, what the decision depends on (e.g. a
        compact style for small models); empty by default."""
        return ""

    # ---- replies ---------------------------------------------------------------------------------
    @abstractmethod
    def parse_move(self, text: str) -> Any:
        """Reply → move; raise ``InvalidReply`` when the format is not respected."""

    @abstractmethod
    def format_move(self, move: Any) -> str:
        """Move → canonical reply text (``parse_move(format_move(m)) == m``)."""

    @abstractmethod
    def default_move(self) -> Any:
        """The declared move used (flagged ``invalid``) when no valid reply could be had."""

    def move_replies(self, events: Sequence[Event] = ()) -> tuple[str, ...] | None:
        """Every legal canonical move reply, given what the seat has observed, when the set is
        finite (for constrained decoding); None when it is not known."""
        return None

    def parse(self, kind: Kind, text: str) -> Any:
        return parse_message(text) if kind is Kind.MESSAGE else self.parse_move(text)

    def format(self, kind: Kind, action: Any) -> str:
        return format_message(action) if kind is Kind.MESSAGE else self.format_move(action)

    def default(self, kind: Kind) -> Any:
        """Default action for an invalid reply: an empty message, or the declared default move."""
        return "" if kind is Kind.MESSAGE else self.default_move()

    def allowed_replies(self, kind: Kind, events: Sequence[Event] = ()) -> tuple[str, ...] | None:
        return None if kind is Kind.MESSAGE else self.move_replies(events)

    # ---- people at a terminal ---------------------------------------------------------------------
    def human_hint(self, kind: Kind) -> str:
        """How a person types an action (a shorthand is accepted besides the exact format)."""
        return "type your message" if kind is Kind.MESSAGE else "type your move"

    def parse_human(self, kind: Kind, text: str) -> Any:
        """Lenient parse for people: the exact format, or the game's shorthand."""
        if kind is Kind.MESSAGE:
            try:
                return parse_message(text)
            except InvalidReply:
                body = text.strip()
                if not body or len(body) > MAX_MESSAGE_CHARS:
                    raise
                return body
        try:
            return self.parse_move(text)
        except InvalidReply:
            return self.parse_move_shorthand(text)

    def parse_move_shorthand(self, text: str) -> Any:
        """A person's shorthand for a move (default: none besides the exact format)."""
        raise InvalidReply(f"could not read a move from {text!r}")
