"""N-player IPD text protocol: one disguised action per co-player, each named.

Actions are disguised as in the IPD: ``<A>`` (cooperate) and ``<B>`` (defect). A move reply is
exactly ``Alice: <A>, Carol: <B>`` — every co-player's name, in seat order, a colon, one space and
the action toward that player, the entries separated by ``", "`` (whitespace around the whole
reply allowed). Anything else raises ``InvalidReply``. The text cannot tell who is replying, so
the parsed move is :class:`~detente.games.multi_ipd.Addressed` (it keeps the names) and the game
checks that they are the mover's co-players, as the item games check their counts.

The full style renders everything a round made public (every move and every player's points);
the compact style only the observer's own pairs and its points. The declared default move is
defection toward everyone (as in the IPD); it depends on the number of players, so build the
protocol with the game's config (``make_protocol(name, style, config)``). People may type each
co-player's name and a letter, in any order and case: ``bob a, carol b``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import ClassVar

from detente.games.base import PLAYER_NAMES, Event, Game, GameConfig, Kind, others
from detente.games.ipd import Move
from detente.games.multi_ipd import Addressed, MultiIPD, MultiIPDConfig, RoundEnd, RoundStart
from detente.protocol.base import InvalidReply, Protocol, Style
from detente.protocol.ipd import MOVES, TOKENS

_NAME = "|".join(PLAYER_NAMES)
_ENTRY = rf"({_NAME}): (<A>|<B>)"
REPLY_PATTERN = re.compile(rf"\s*{_ENTRY}(?:, {_ENTRY})*\s*")
ENTRY_PATTERN = re.compile(_ENTRY)
# People: names in any case and order, the colon and the brackets optional, commas or spaces.
_SEATS = {name.lower(): seat for seat, name in enumerate(PLAYER_NAMES)}
_HUMAN_ENTRY = rf"({_NAME})\s*:?\s*<?([ab])>?"
HUMAN_PATTERN = re.compile(rf"\s*{_HUMAN_ENTRY}(?:\s*,?\s*{_HUMAN_ENTRY})*\s*", re.IGNORECASE)
HUMAN_ENTRY = re.compile(_HUMAN_ENTRY, re.IGNORECASE)


def _points(x: float) -> str:
    return f"{x:g}"


def _and(parts: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def template(co_players: Sequence[int]) -> str:
    """The reply's shape for these co-players: ``Alice: X, Bob: X``."""
    return ", ".join(f"{PLAYER_NAMES[s]}: X" for s in co_players)


class MultiIPDProtocol(Protocol):
    game: ClassVar[str] = MultiIPD.name

    def __init__(self, style: Style | str = Style.FULL, players: int = 3) -> None:
        super().__init__(style)
        self.players = players

    @classmethod
    def for_config(cls, style: Style | str, config: GameConfig | None) -> MultiIPDProtocol:
        config = config if config is not None else MultiIPDConfig()
        assert isinstance(config, MultiIPDConfig)
        return cls(style, config.players)

    # ---- prompts ---------------------------------------------------------------------------------
    def rules(self, game: Game, player: int) -> str:
        assert isinstance(game, MultiIPD)
        c, co_players = game.config, others(player, game.num_players)
        r, s, t, p = map(_points, (c.reward, c.sucker, c.temptation, c.punishment))
        shape = template(co_players)
        if self.style is Style.COMPACT:
            horizon = f" {game.num_rounds} rounds." if c.tell_horizon else ""
            return (
                f"ipd{game.num_players}. you {PLAYER_NAMES[player]}. per other: AA {r}/{r} "
                f"AB {s}/{t} BA {t}/{s} BB {p}/{p}, summed.{horizon} reply {shape} "
                "(X: <A> or <B>)"
            )
        horizon = (
            f" The game lasts {game.num_rounds} rounds."
            if c.tell_horizon
            else " You do not know how many rounds the game lasts."
        )
        names = _and([PLAYER_NAMES[s] for s in co_players])
        others_word = "player" if len(co_players) == 1 else "players"
        return (
            f"You are {PLAYER_NAMES[player]}, playing a repeated game with {len(co_players)} "
            f"other {others_word}: {names}.{horizon} In every round each player chooses, at the "
            "same time, one of two actions toward each other player: <A> or <B>. Every two "
            "players play their own game, and your points in a round are the sum of your points "
            "in your games with each other player. In the game between you and another player:"
            f" if you both choose <A> toward each other, you each get {r}; if you "
            f"both choose <B>, you each get {p}; if you choose <A> and they choose <B>, you get "
            f"{s} and they get {t}; if you choose <B> and they choose <A>, you get {t} and they "
            f"get {s}. Your goal is to get as many points as possible over the whole game. After "
            "each round everyone sees every player's choices and points. Reply with exactly "
            f'"{shape}", where each X is your action toward that player (<A> or <B>), and '
            "nothing else."
        )

    def render_event(self, event: Event, player: int) -> str:
        if isinstance(event, RoundStart):
            return "" if self.style is Style.COMPACT else f"Round {event.round + 1}."
        if isinstance(event, RoundEnd):
            if self.style is Style.COMPACT:
                pairs = [
                    f"{PLAYER_NAMES[j]}: you {TOKENS[own]} they {TOKENS[theirs]}"
                    for j, own, theirs in zip(
                        event.co_players, event.own_moves, event.other_moves, strict=True
                    )
                ]
                return "; ".join([*pairs, f"points {_points(event.own_reward)}"])
            return f"Round {event.round + 1} result: {self._round_text(event)}"
        raise TypeError(f"not a {MultiIPD.name} event: {event!r}")

    def _round_text(self, event: RoundEnd) -> str:
        """Every player's choices, the observer's first, then everyone's points."""
        n = len(event.moves)

        def who(seat: int) -> str:
            return "you" if seat == event.player else PLAYER_NAMES[seat]

        choices = []
        for i in [event.player, *event.co_players]:
            toward = [
                f"{TOKENS[m]} toward {who(j)}"
                for j, m in zip(others(i, n), event.moves[i], strict=True)
            ]
            choices.append(f"{who(i)} chose {_and(toward)}")
        points = [
            f"{who(i)} {_points(event.rewards[i])}" for i in [event.player, *event.co_players]
        ]
        return f"{'; '.join(choices)}. Points: {', '.join(points)}."

    def instruction(self, kind: Kind) -> str:
        if kind is not Kind.MOVE:
            raise ValueError(f"{MultiIPD.name} has no messages")
        if self.style is Style.COMPACT:
            return "move?"
        return "Your choices (each other player's name: <A> or <B>):"

    # ---- replies ---------------------------------------------------------------------------------
    def parse_move(self, text: str) -> Addressed:
        if REPLY_PATTERN.fullmatch(text) is None:
            raise InvalidReply(
                'expected exactly "Name: <A>, Name: <B>", one entry per other player'
            )
        entries = [
            (PLAYER_NAMES.index(name), MOVES[token]) for name, token in ENTRY_PATTERN.findall(text)
        ]
        return self._addressed(entries)

    def _addressed(self, entries: list[tuple[int, Move]]) -> Addressed:
        """The move of these (seat, move) entries, in the order given: every other player once,
        in seat order, within this game's seats (whose co-players they are, the game checks)."""
        seats = [seat for seat, _ in entries]
        if len(seats) != self.players - 1:
            raise InvalidReply(f"expected {self.players - 1} entries, one per other player")
        if any(a >= b for a, b in itertools.pairwise(seats)) or seats[-1] >= self.players:
            raise InvalidReply("name each other player once, in seat order")
        return Addressed([move for _, move in entries], seats)

    def format_move(self, move: tuple[Move, ...]) -> str:
        if not isinstance(move, Addressed):
            raise TypeError("a reply names its co-players: format an Addressed move")
        return ", ".join(
            f"{PLAYER_NAMES[s]}: {TOKENS[m]}" for s, m in zip(move.toward, move, strict=True)
        )

    def default_move(self) -> tuple[Move, ...]:
        return (Move.DEFECT,) * (self.players - 1)

    def move_replies(self, events: Sequence[Event] = ()) -> tuple[str, ...] | None:
        """The 2^(N−1) replies of the seat whose events these are (``None`` without events:
        the names depend on the seat)."""
        starts = [e for e in events if isinstance(e, RoundStart)]
        if not starts:
            return None
        co_players = starts[-1].co_players
        return tuple(
            self.format_move(Addressed(moves, co_players))
            for moves in itertools.product(list(Move), repeat=len(co_players))
        )

    # ---- people at a terminal -------------------------------------------------------------------
    def human_hint(self, kind: Kind) -> str:
        return "type each other player's name and A or B (e.g. bob a carol b)"

    def parse_move_shorthand(self, text: str) -> Addressed:
        if HUMAN_PATTERN.fullmatch(text) is None:
            raise InvalidReply(f"{text!r} is not a name and A or B for each other player")
        entries = [
            (_SEATS[name.lower()], MOVES[f"<{letter.upper()}>"])
            for name, letter in HUMAN_ENTRY.findall(text)
        ]
        return self._addressed(sorted(entries))
