"""IPD text protocol: moves disguised as ``<A>`` (cooperate) and ``<B>`` (defect)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from detente.games.base import PLAYER_NAMES, Event, Game, Kind
from detente.games.ipd import IPD, Move, RoundEnd, RoundStart
from detente.protocol.base import InvalidReply, Protocol, Style

TOKENS: dict[Move, str] = {Move.COOPERATE: "<A>", Move.DEFECT: "<B>"}
MOVES: dict[str, Move] = {token: move for move, token in TOKENS.items()}
REPLY_PATTERN = re.compile(r"\s*(<A>|<B>)\s*")


def _points(x: float) -> str:
    return f"{x:g}"


class IPDProtocol(Protocol):
    game: ClassVar[str] = IPD.name

    def rules(self, game: Game, player: int) -> str:
        assert isinstance(game, IPD)
        c = game.config
        payoffs = (c.reward, c.sucker, c.temptation, c.punishment)
        if self.style is Style.COMPACT:
            r, s, t, p = map(_points, payoffs)
            horizon = f" {game.num_rounds} rounds." if c.tell_horizon else ""
            return f"ipd. AA {r}/{r} AB {s}/{t} BA {t}/{s} BB {p}/{p}.{horizon} reply <A> or <B>"
        r, s, t, p = map(_points, payoffs)
        horizon = (
            f" The game lasts {game.num_rounds} rounds."
            if c.tell_horizon
            else " You do not know how many rounds the game lasts."
        )
        return (
            f"You are {PLAYER_NAMES[player]}, playing a repeated game against another player."
            f"{horizon} In every round you both choose, at the same time, one of two actions: "
            "<A> or <B>. Points per round: if you both choose <A>, you each get "
            f"{r}; if you both choose <B>, you each get {p}; if you choose <A> and the other "
            f"chooses <B>, you get {s} and they get {t}; if you choose <B> and the other chooses "
            f"<A>, you get {t} and they get {s}. Your goal is to get as many points as possible "
            "over the whole game. After each round you see the other player's choice. "
            "Reply with exactly <A> or <B> and nothing else."
        )

    def render_event(self, event: Event, player: int) -> str:
        if isinstance(event, RoundStart):
            return "" if self.style is Style.COMPACT else f"Round {event.round + 1}."
        if isinstance(event, RoundEnd):
            own, other = TOKENS[event.own_move], TOKENS[event.other_move]
            if self.style is Style.COMPACT:
                return f"you {own} other {other}"
            return (
                f"Round {event.round + 1} result: you chose {own}, the other player chose "
                f"{other}. You got {_points(event.own_reward)} points, they got "
                f"{_points(event.other_reward)}."
            )
        raise TypeError(f"not an IPD event: {event!r}")

    def instruction(self, kind: Kind) -> str:
        if kind is not Kind.MOVE:
            raise ValueError("the IPD has no messages")
        return "move?" if self.style is Style.COMPACT else "Your choice (<A> or <B>):"

    def parse_move(self, text: str) -> Move:
        match = REPLY_PATTERN.fullmatch(text)
        if match is None:
            raise InvalidReply("expected exactly <A> or <B>")
        return MOVES[match.group(1)]

    def format_move(self, move: Move) -> str:
        return TOKENS[move]

    def default_move(self) -> Move:
        return Move.DEFECT

    def move_replies(self, events: Sequence[Event] = ()) -> tuple[str, ...]:
        return tuple(TOKENS.values())

    def human_hint(self, kind: Kind) -> str:
        return "type A (or <A>) or B (or <B>)"

    def parse_move_shorthand(self, text: str) -> Move:
        key = f"<{text.strip().strip('<>').upper()}>"
        if key not in MOVES:
            raise InvalidReply(f"{text!r} is neither A nor B")
        return MOVES[key]
