"""Every registered detente game as a PettingZoo environment, in two modes.

``make_env(game, mode, **options)`` gives the native ``AECEnv`` (:class:`DetenteEnv`), for every
game and every configuration; ``make_parallel_env`` gives a ``ParallelEnv`` through PettingZoo's
own conversions. ``options`` are the game's options (``rounds=3``, ``players=4``, ...), checked
by the game's config; ``style`` (``full`` or ``compact``) picks the prompts of the text mode.

Agents are ``player_0`` .. ``player_{N-1}``: seat ``i`` of the game (``player_0`` is the seat
the prompts call Alice, ``player_1`` Bob, ...).

Turns (AEC). ``agent_selection`` is the next seat to act in the game's current phase: the speaker
of a message phase, or, in a move phase, the seats that move, one after the other in seat order;
the moves of a phase are applied together when its last seat has moved, and no seat sees another
one's move before that (PettingZoo's way of modelling simultaneous moves in turns).

Parallel. A game whose every phase is a move of every player (no chat: every game with
``messages_per_player=0``, and the IPDs and Split always) is parallelizable: one parallel step
is one round, all agents act (``aec_to_parallel``). A game with message phases is turn-based:
``turn_based_aec_to_parallel`` gives a ``ParallelEnv`` whose step applies the action of the one
agent to act, ``infos[agent]["active_agent"]`` (the other agents' actions are ignored), so a
move phase takes one step per player.

Modes:

* ``text``: what a language model sees and writes in detente. An observation is a dict:
  ``prompt``, the seat's new user message (the protocol's rendering of the events the seat has
  not been shown, with the instruction of its decision: exactly the message detente's rollout
  sends), and ``kind``, 0 when the seat is asked nothing now (waiting, or the game is over: the
  prompt then holds the new events only), 1 for a message, 2 for a move. An action is the reply
  string. The rules (the system prompt) are in the infos of ``reset``
  (``infos[agent]["rules"]``) and in ``DetenteEnv.rules(agent)``; a seat to make a move also
  finds the canonical legal replies in ``infos[agent]["allowed_replies"]`` (for constrained
  decoding). Text spaces: :class:`AnyText` (any characters: chat messages may hold any).
* ``structured``: gymnasium spaces over the game's moves. The action is ``Discrete(K)``: action
  ``k`` is the ``k``-th canonical legal reply of the decision, in the order of the protocol's
  ``move_replies(events)`` (IPD: cooperate, defect; amounts: 0, 1, ...; bundles in
  lexicographic order); ``infos[agent]["action_mask"]`` (int8, length ``K``) marks those the
  rules accept now (a commons request above the stock is masked). ``K`` is the length of
  ``move_replies()`` where the protocol lists its replies without events (every game but two),
  else :data:`MOVE_TABLE_SIZE` (Deal or No Deal, whose legal bundles depend on the round's
  stock, and the N-player IPD, whose replies name the seat's co-players). The observation is a
  ``Box`` of float64: the fields of the seat's latest round-start event, then a flag (1 once a
  round has ended) and the fields of its latest round-end event (zeros before), each field in
  its dataclass order, numbers as they are, booleans 0/1, enum members by their index, tuples
  flattened, an optional field as a presence flag and its value. The structured mode has no
  messages: a chat game is played with ``messages_per_player=0`` unless told otherwise, and
  options that give the game message phases are an error.

Invalid replies: detente re-asks (``free_retries``), then samples constrained, then plays the
declared default move flagged invalid (``rollout/runner.py``). An environment cannot re-ask: a
reply that does not parse or that the rules reject (an unmasked structured action, an action of
the wrong type) gets the declared default at once (the default move, or an empty message), and
``infos[agent]`` reports ``invalid`` (this decision), ``invalid_count`` (the seat's so far) and
``error`` (why). A wrapper that wants detente's retries can re-ask before stepping: the
``allowed_replies`` (text) and the ``action_mask`` (structured) say what is valid.

Rewards are the game's points (unscaled): a round's rewards on the step that resolves it, 0 on
the others. Every agent terminates when the game ends (its horizon, or early, e.g. a collapsed
commons); nothing truncates. Seeding: ``reset(seed=s)`` plays the game of seed ``s`` (a detente
game is a function of its seed and the actions); ``reset()`` draws the next seed from a
generator seeded by the last explicit seed (from the OS before any).
"""

from __future__ import annotations

import dataclasses
import functools
import string
import types
import typing
from collections.abc import Sequence
from enum import Enum, StrEnum
from typing import Any

import numpy as np

try:
    import gymnasium
    from gymnasium import spaces
    from pettingzoo import AECEnv, ParallelEnv
    from pettingzoo.utils.conversions import aec_to_parallel, turn_based_aec_to_parallel
    from pettingzoo.utils.wrappers import OrderEnforcingWrapper
except ImportError as error:  # pragma: no cover - the extra is installed for the tests
    raise ImportError(
        f"detente's PettingZoo environments need the pettingzoo extra ({error.name} is "
        "missing): pip install 'detente[pettingzoo]'"
    ) from None

from detente.games import (
    Event,
    Game,
    IllegalAction,
    Kind,
    MessageEvent,
    game_type,
    make_config,
    make_game,
)
from detente.games.chat import ChatConfig
from detente.protocol import InvalidReply, Protocol, make_protocol

MAX_PROMPT_CHARS = 1 << 16  # the longest text observation (a round's chat of 500-char messages)
MAX_REPLY_CHARS = 2048  # the longest reply the text action space holds (longer ones are read too)
MOVE_TABLE_SIZE = 1024  # actions of a structured seat whose protocol lists no replies up front
SAMPLED_CHARACTERS = string.printable  # what a text space's ``sample`` draws from
KIND_CODES: dict[Kind | None, int] = {None: 0, Kind.MESSAGE: 1, Kind.MOVE: 2}


class Mode(StrEnum):
    TEXT = "text"
    STRUCTURED = "structured"


class AnyText(spaces.Text):
    """A gymnasium ``Text`` space whose strings may hold any character (a chat message may);
    ``sample`` draws printable ASCII."""

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length


def agent_name(seat: int) -> str:
    return f"player_{seat}"


# ---- structured observations: events as numbers --------------------------------------------------
@functools.cache
def _field_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _optional(hint: Any) -> Any | None:
    """``X`` of an ``X | None`` annotation, else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"only `X | None` unions can be encoded, not {hint!r}")
        return rest[0]
    return None


def _named_tuple(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields")


def _item_hints(hint: Any, length: int) -> list[Any]:
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
        return [args[0]] * length
    if len(args) != length:
        raise TypeError(f"a tuple of {length} items does not fit {hint!r}")
    return list(args)


def _size(hint: Any) -> int:
    """Numbers of a value of ``hint`` whatever the value (needed for an absent optional)."""
    inner = _optional(hint)
    if inner is not None:
        return 1 + _size(inner)
    if _named_tuple(hint):
        return sum(_size(h) for h in typing.get_type_hints(hint).values())
    if typing.get_origin(hint) is tuple and Ellipsis not in typing.get_args(hint):
        return sum(_size(h) for h in typing.get_args(hint))
    if hint in (int, float, bool) or (isinstance(hint, type) and issubclass(hint, Enum)):
        return 1
    raise TypeError(f"an optional {hint!r} has no fixed size to encode")


def _numbers(value: Any, hint: Any) -> list[float]:
    inner = _optional(hint)
    if inner is not None:
        return [0.0] * (1 + _size(inner)) if value is None else [1.0, *_numbers(value, inner)]
    if isinstance(hint, type) and issubclass(hint, Enum):
        return [float(list(hint).index(value))]
    if _named_tuple(hint):
        hints = typing.get_type_hints(hint)
        return [x for name in hint._fields for x in _numbers(getattr(value, name), hints[name])]
    if typing.get_origin(hint) is tuple:
        items = _item_hints(hint, len(value))
        return [x for item, h in zip(value, items, strict=True) for x in _numbers(item, h)]
    if hint in (int, float, bool):
        return [float(value)]
    raise TypeError(f"cannot encode a field of type {hint!r}")


def encode_event(event: Event) -> list[float]:
    """Every field of ``event`` as numbers, in dataclass order (see the module docstring)."""
    return [
        x for name, hint in _field_hints(type(event)) for x in _numbers(getattr(event, name), hint)
    ]


def round_events(events: Sequence[Event], done: bool) -> tuple[Event, Event | None]:
    """(the latest round-start event, the latest round-end event or None) of a seat's events.

    Every round gives each seat one event when it is dealt and one when it resolves, in that
    order (``Game.act``); messages aside, a seat's events alternate start, end, start, ...
    """
    played = [e for e in events if not isinstance(e, MessageEvent)]
    if done:
        return played[-2], played[-1]
    return played[-1], played[-2] if len(played) > 1 else None


# ---- what a game looks like before play ----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Shape:
    """What the first round of a game (seed 0, every seat playing the declared defaults) shows:
    whether it has message phases, whether every phase lets every player act, and the sizes of
    its round events as numbers."""

    messages: bool
    parallel: bool
    start_size: int
    end_size: int


def _shape(name: str, config: Any, protocol: Protocol) -> _Shape:
    game = make_game(name, config, 0)
    n = game.num_players
    messages, parallel = False, True
    while game.round == 0:
        phase = game.phase
        messages |= phase.kind is Kind.MESSAGE
        parallel &= phase.kind is Kind.MOVE and tuple(phase.players) == tuple(range(n))
        game.act({p: protocol.default(phase.kind) for p in phase.players})
    start, end = round_events(game.events(0), game.done)
    assert end is not None
    return _Shape(messages, parallel, len(encode_event(start)), len(encode_event(end)))


# ---- the environment -----------------------------------------------------------------------------
@dataclasses.dataclass
class _Decision:
    """A seat's pending move decision: the legal canonical replies, their moves, the mask."""

    replies: tuple[str, ...] | None
    moves: list[Any]
    mask: np.ndarray | None


class DetenteEnv(AECEnv):
    """One detente game as a PettingZoo ``AECEnv`` (see the module docstring).

    ``game``: a registered game name; ``options``: its options; ``mode``: ``text`` or
    ``structured``; ``style``: the prompts of the text mode; ``render_mode``: None or ``ansi``
    (``render()`` returns the state of the game as a line of text).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "name": "detente"}

    def __init__(
        self,
        game: str,
        mode: Mode | str = Mode.TEXT,
        options: dict[str, Any] | None = None,
        style: str = "full",
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        self.mode = Mode(mode)
        options = dict(options or {})
        self.config = make_config(game, options)
        if (
            self.mode is Mode.STRUCTURED
            and isinstance(self.config, ChatConfig)
            and "messages_per_player" not in options
        ):
            self.config = make_config(game, {**options, "messages_per_player": 0})
        self.game_name = game
        self.protocol = make_protocol(game, style, self.config)
        self._shape = _shape(game, self.config, self.protocol)
        if self.mode is Mode.STRUCTURED and self._shape.messages:
            raise ValueError(
                f"{game}: the structured mode has no message actions, but these options give "
                "the game message phases: play it without chat (messages_per_player=0) or in "
                "mode='text'"
            )
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.metadata = {
            **self.metadata,
            "name": f"detente_{game.replace('-', '_')}_{self.mode.value}",
            "is_parallelizable": self._shape.parallel,
        }
        players = game_type(game).describe(self.config).players
        self.possible_agents = [agent_name(p) for p in range(players)]
        self._seats = {agent: p for p, agent in enumerate(self.possible_agents)}
        self._observation_spaces = {a: self._observation_space() for a in self.possible_agents}
        self._action_spaces = {a: self._action_space() for a in self.possible_agents}
        self._seeds: np.random.Generator | None = None

    # ---- spaces -------------------------------------------------------------------------------
    def _observation_space(self) -> spaces.Space:
        if self.mode is Mode.TEXT:
            prompt = AnyText(MAX_PROMPT_CHARS, charset=SAMPLED_CHARACTERS)
            return spaces.Dict({"prompt": prompt, "kind": spaces.Discrete(len(KIND_CODES))})
        size = self._shape.start_size + 1 + self._shape.end_size
        return spaces.Box(-np.inf, np.inf, (size,), np.float64)

    def _action_space(self) -> spaces.Space:
        if self.mode is Mode.TEXT:
            return AnyText(MAX_REPLY_CHARS, charset=SAMPLED_CHARACTERS)
        replies = self.protocol.move_replies(())
        return spaces.Discrete(MOVE_TABLE_SIZE if replies is None else len(replies))

    def observation_space(self, agent: str) -> spaces.Space:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self._action_spaces[agent]

    # ---- the AEC interface -------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        """A new game: of seed ``seed``, or of the next seed drawn (``options`` are ignored)."""
        if seed is not None:
            self._seeds = np.random.default_rng(seed)
        elif self._seeds is None:
            self._seeds = np.random.default_rng()
        self.game: Game = make_game(
            self.game_name,
            self.config,
            seed if seed is not None else int(self._seeds.integers(2**62)),
        )
        self.agents = self.possible_agents[:]
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        n = len(self.agents)
        self._shown = [0] * n  # events each seat was shown at its last decision
        self._invalid = [False] * n
        self._invalid_count = [0] * n
        self._errors: list[str | None] = [None] * n
        self._pending: dict[int, Any] = {}  # actions of the current phase so far
        self._begin_phase()
        self._select()
        self._refresh_infos()
        if self.mode is Mode.TEXT:
            for agent, seat in self._seats.items():
                self.infos[agent]["rules"] = self.protocol.rules(self.game, seat)

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        seat, phase = self._seats[agent], self.game.phase
        decided, error = self._read(seat, phase.kind, action)
        self._invalid[seat], self._errors[seat] = error is not None, error
        self._invalid_count[seat] += error is not None
        self._pending[seat] = decided
        self._shown[seat] = len(self.game.events(seat))
        self._cumulative_rewards[agent] = 0.0
        self._clear_rewards()
        if len(self._pending) == len(phase.players):
            played = self.game.round
            self.game.act(self._pending)
            self._pending = {}
            if self.game.round > played:
                for a, reward in zip(self.possible_agents, self.game.rewards[-1], strict=True):
                    self.rewards[a] = float(reward)
            if self.game.done:
                self.terminations = dict.fromkeys(self.agents, True)
            self._begin_phase()
        self._select()
        self._refresh_infos()
        self._accumulate_rewards()

    def observe(self, agent: str) -> Any:
        seat = self._seats[agent]
        events = self.game.events(seat)
        kind = self._asked(seat)
        if self.mode is Mode.STRUCTURED:
            start, end = round_events(events, self.game.done)
            numbers = encode_event(start)
            numbers += (
                [0.0] * (1 + self._shape.end_size) if end is None else [1.0, *encode_event(end)]
            )
            return np.asarray(numbers, dtype=np.float64)
        new = events[self._shown[seat] :]
        if kind is None:
            prompt = render_events(self.protocol, new, seat)
        else:
            prompt = self.protocol.observation(new, kind, seat, history=events)
        return {"prompt": prompt, "kind": np.int64(KIND_CODES[kind])}

    def rules(self, agent: str) -> str:
        """The system prompt of ``agent``'s seat in the current game."""
        return self.protocol.rules(self.game, self._seats[agent])

    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() needs render_mode='ansi'")
            return None
        game = self.game
        totals = ", ".join(
            f"{a} {total:g}"
            for a, total in zip(self.possible_agents, game.total_rewards(), strict=True)
        )
        where = "over" if game.done else f"round {game.round + 1}, {game.phase.kind.value}"
        return f"{game.name} (seed {game.seed}), {where}; points: {totals}"

    def close(self) -> None:
        """Nothing to release."""

    # ---- the game behind it --------------------------------------------------------------------
    def _asked(self, seat: int) -> Kind | None:
        """What ``seat`` must give now (None: nothing, it waits or the game is over)."""
        if self.game.done or seat in self._pending or seat not in self.game.phase.players:
            return None
        return self.game.phase.kind

    def _select(self) -> None:
        if self.game.done:
            self.agent_selection = self.agents[0]
            return
        waiting = [p for p in self.game.phase.players if p not in self._pending]
        self.agent_selection = self.possible_agents[waiting[0]]

    def _begin_phase(self) -> None:
        """The decisions of the phase that begins: the legal replies of each seat to move."""
        self._decisions: dict[int, _Decision] = {}
        if self.game.done:
            return
        phase = self.game.phase
        if phase.kind is Kind.MESSAGE:
            if self.mode is Mode.STRUCTURED:
                raise RuntimeError(f"{self.game_name} reached a message phase in structured mode")
            return
        for seat in phase.players:
            self._decisions[seat] = self._decision(seat)

    def _decision(self, seat: int) -> _Decision:
        replies = self.protocol.move_replies(self.game.events(seat))
        if self.mode is Mode.TEXT:
            return _Decision(replies, [], None)
        if replies is None:
            raise RuntimeError(f"{self.game_name} lists no legal replies: no structured moves")
        size = self.action_space(agent_name(seat)).n
        if len(replies) > size:
            raise RuntimeError(
                f"{self.game_name}: {len(replies)} legal replies, more than the {size} actions"
            )
        mask = np.zeros(size, dtype=np.int8)
        moves = []
        for index, reply in enumerate(replies):
            try:
                move = self.protocol.parse(Kind.MOVE, reply)
                self.game.check_move(seat, move)
            except (InvalidReply, IllegalAction):
                move = None
            else:
                mask[index] = 1
            moves.append(move)
        return _Decision(replies, moves, mask)

    def _read(self, seat: int, kind: Kind, action: Any) -> tuple[Any, str | None]:
        """(the action the game gets, why the reply was invalid or None)."""
        if self.mode is Mode.STRUCTURED:
            decision = self._decisions[seat]
            assert decision.mask is not None
            index = np.asarray(action)
            whole = index.ndim == 0 and index.dtype.kind in "iu"  # an integer, not a bool
            if whole and 0 <= index < len(decision.mask) and decision.mask[index]:
                return decision.moves[int(index)], None
            return self.protocol.default(kind), f"action {action!r} is not a legal move now"
        if not isinstance(action, str):
            return self.protocol.default(kind), f"a reply is a string, not {type(action).__name__}"
        try:
            move = self.protocol.parse(kind, action)
            if kind is Kind.MOVE:
                self.game.check_move(seat, move)
        except InvalidReply as invalid:
            return self.protocol.default(kind), str(invalid)
        except IllegalAction as illegal:
            return self.protocol.default(kind), f"illegal move: {illegal}"
        return move, None

    def _refresh_infos(self) -> None:
        self.infos = {}
        for agent in self.agents:
            seat = self._seats[agent]
            info: dict[str, Any] = {
                "invalid": self._invalid[seat],
                "invalid_count": self._invalid_count[seat],
            }
            if self._errors[seat] is not None:
                info["error"] = self._errors[seat]
            decision = self._decisions.get(seat)
            if decision is not None and self._asked(seat) is Kind.MOVE:
                if self.mode is Mode.TEXT:
                    info["allowed_replies"] = decision.replies
                else:
                    info["action_mask"] = decision.mask.copy()
            self.infos[agent] = info


def render_events(protocol: Protocol, events: Sequence[Event], seat: int) -> str:
    """``events`` as ``seat`` reads them, one line each (``Protocol.observation`` without the
    instruction: what a seat that is asked nothing is shown)."""
    lines = [
        protocol.render_message(e)
        if isinstance(e, MessageEvent)
        else protocol.render_event(e, seat)
        for e in events
    ]
    return "\n".join(line for line in lines if line)


def make_env(
    game: str,
    mode: Mode | str = Mode.TEXT,
    *,
    style: str = "full",
    render_mode: str | None = None,
    **options: Any,
) -> AECEnv:
    """``game`` as a PettingZoo ``AECEnv`` (:class:`DetenteEnv` behind PettingZoo's
    ``OrderEnforcingWrapper``); ``options`` are the game's options (unknown keys raise)."""
    return OrderEnforcingWrapper(DetenteEnv(game, mode, options, style, render_mode))


def make_parallel_env(
    game: str,
    mode: Mode | str = Mode.TEXT,
    *,
    style: str = "full",
    render_mode: str | None = None,
    **options: Any,
) -> ParallelEnv:
    """``game`` as a PettingZoo ``ParallelEnv``: one step a round (``aec_to_parallel``) when
    every phase is a move of every player, else one step a decision
    (``turn_based_aec_to_parallel``: only ``infos[agent]["active_agent"]``'s action counts)."""
    env = make_env(game, mode, style=style, render_mode=render_mode, **options)
    if env.metadata["is_parallelizable"]:
        return aec_to_parallel(env)
    return turn_based_aec_to_parallel(env)


__all__ = [
    "AnyText",
    "DetenteEnv",
    "Mode",
    "agent_name",
    "encode_event",
    "make_env",
    "make_parallel_env",
    "render_events",
]
