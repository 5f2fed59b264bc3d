"""A seat's chat read back into the game's events, by replaying the game (``detente serve``).

A plain chat-completions request carries only the chat a seat was shown: the rules (system),
then the observations (user) and the seat's own replies (assistant), as the rollout wrote them.
:func:`read_chat` finds the seat, the decision asked for and the events behind it by playing the
game again: the seat's own actions are its replies, read as the rollout reads them (the declared
default for a reply that does not parse); the other seats' moves are tried from the protocol's
finite move replies; each observation the replay would show must equal the chat's, character for
character. So nothing is guessed: a chat is read exactly, or not at all.

What it cannot read: a game whose rounds deal private values at random (split, dond,
trust-split draw them from the game's seed, which the chat does not hold), other seats' chat
messages, a chat in another prompt style or with other game options than the server's, a random
horizon that the replay's seed ends early, the format re-asks of an ``api:`` agent. Those
requests need the ``detente`` extension (which ``api:`` agents send to loopback servers)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detente.games import Game, GameConfig, Kind, make_game
from detente.games.base import Event, IllegalAction
from detente.protocol.base import InvalidReply, Protocol
from detente.rollout.runner import _parse_legal

MAX_STATES = 10_000  # game states the search may visit for one chat


class ChatUnreadable(ValueError):
    """A chat that is not the chat of a seat of this game (the message says where it departs)."""


@dataclass(frozen=True)
class Seat:
    """Who is asked, for what, having observed what."""

    player: int
    kind: Kind
    events: tuple[Event, ...]


def read_chat(
    messages: Sequence[Mapping[str, str]],
    game: str,
    config: GameConfig | None,
    protocol: Protocol,
) -> Seat:
    """The seat whose chat ``messages`` is (an optional system prompt, then user and assistant
    turns alternating, ending with a user turn), or ``ChatUnreadable``.

    Seats are tried in order; a system prompt must equal the protocol's rules for the seat. The
    first seat whose replay reproduces every observation wins (in a symmetric game with a
    compact, seat-blind prompt both may: they observed the same)."""
    try:
        system, turns = _split(messages)
    except _Departs as departs:
        raise ChatUnreadable(_unreadable(game, protocol, departs)) from None
    observations, replies = turns[0::2], turns[1::2]
    start = make_game(game, config, 0)
    furthest = _Departs(-1, f"the system prompt is not {game}'s rules for any seat")
    for player in range(start.num_players):
        if system is not None and system != protocol.rules(start, player):
            continue
        try:
            return _replay(start, player, observations, replies, protocol)
        except _Departs as departs:
            furthest = departs if departs.index > furthest.index else furthest
    raise ChatUnreadable(_unreadable(game, protocol, furthest))


def _unreadable(game: str, protocol: Protocol, departs: Exception) -> str:
    return (
        f"the chat cannot be read as a seat of {game} in the {protocol.style.value} style: "
        f"{departs}"
    )


class _Departs(Exception):
    """Where a replay parts from the chat: the index of the observation, and how."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def _split(messages: Sequence[Mapping[str, str]]) -> tuple[str | None, list[str]]:
    """The system prompt (if any) and the contents of the turns, checked to alternate."""
    system = None
    rest = list(messages)
    if rest and rest[0]["role"] in ("system", "developer"):
        system = rest.pop(0)["content"]
    for index, message in enumerate(rest):
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            position = index + (system is not None)
            raise _Departs(
                -1, f"message {position} is a {message['role']} message: a seat's chat "
                "alternates user observations and assistant replies after the rules",
            )  # fmt: skip
    return system, [m["content"] for m in rest]


# A state of the search: a game, the actions to apply to a copy of it first (None: none), the
# seat's events already shown, the index of the next observation to reproduce.
_State = tuple[Game, dict[int, Any] | None, int, int]


def _replay(
    start: Game, player: int, observations: list[str], replies: list[str], protocol: Protocol
) -> Seat:
    """Depth-first over the other seats' moves until every observation is reproduced; the
    first departure at the deepest observation reached is the error."""
    stack: list[_State] = [(start, None, 0, 0)]
    deepest = _Departs(-1, "no replay of the game reaches the first user message")
    for _ in range(MAX_STATES):
        if not stack:
            raise deepest
        game, actions, shown, index = stack.pop()
        if actions is not None:
            game = copy.deepcopy(game)
            game.act(actions)
        try:
            found = _step(game, player, shown, index, observations, replies, protocol)
        except _Departs as departs:
            deepest = departs if departs.index > deepest.index else deepest
            continue
        if isinstance(found, Seat):
            return found
        stack.extend(reversed(found))  # the first move reply is tried first
    raise _Departs(len(observations), f"more than {MAX_STATES} game states to try")


def _step(
    game: Game,
    player: int,
    shown: int,
    index: int,
    observations: list[str],
    replies: list[str],
    protocol: Protocol,
) -> Seat | list[_State]:
    """The seat, if this state reproduces the last observation; else the states that follow
    it (``_Departs`` where it parts from the chat)."""
    if game.done:
        raise _Departs(index, f"the game is over before user message {index + 1}")
    phase = game.phase
    if player not in phase.players:  # others act first (e.g. an opener's move)
        return _branches(game, phase.players, {}, shown, index, protocol)
    events = game.events(player)
    expected = protocol.observation(events[shown:], phase.kind, player, history=events)
    if expected != observations[index]:
        raise _Departs(
            index, f"user message {index + 1} is {_clip(observations[index])}, where the game "
            f"shows {_clip(expected)}",
        )  # fmt: skip
    if index == len(observations) - 1:
        return Seat(player, phase.kind, tuple(events))
    own = _own_action(game, player, phase.kind, replies[index], protocol)
    others = [p for p in phase.players if p != player]
    return _branches(game, others, {player: own}, len(events), index + 1, protocol)


def _branches(
    game: Game,
    players: Sequence[int],
    known: dict[int, Any],
    shown: int,
    index: int,
    protocol: Protocol,
) -> list[_State]:
    """The states after this phase: one per combination of the ``players``' legal moves."""
    if players and game.phase.kind is not Kind.MOVE:
        raise _Departs(index, "the other seats' chat messages cannot be replayed")
    choices = [_moves(game, p, index, protocol) for p in players]
    return [
        (game, {**known, **dict(zip(players, combination, strict=True))}, shown, index)
        for combination in itertools.product(*choices)
    ]


def _moves(game: Game, player: int, index: int, protocol: Protocol) -> list[Any]:
    """The legal moves of ``player`` now, from the protocol's move replies."""
    replies = protocol.allowed_replies(Kind.MOVE, game.events(player))
    if replies is None:
        raise _Departs(index, "the other seats' moves are not a finite set to replay")
    moves = []
    for reply in replies:
        try:
            move = protocol.parse_move(reply)
            game.check_move(player, move)
        except (InvalidReply, IllegalAction):
            continue
        moves.append(move)
    return moves


def _own_action(game: Game, player: int, kind: Kind, reply: str, protocol: Protocol) -> Any:
    """The action the rollout took for this reply: the reply's, if it parses and is legal, else
    the declared default."""
    try:
        return _parse_legal(protocol, game, player, kind, reply)
    except InvalidReply:
        return protocol.default(kind)


def _clip(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
