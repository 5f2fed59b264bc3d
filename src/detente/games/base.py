"""The shared machinery of every game: players, phases, events, seeding, horizon, allocation.

A game is a pure, seedable state machine for N players (seats 0..N−1), who declare their
metadata up front (:class:`GameInfo`: players, dynamics, reward bounds, maximum rounds). Each
round is a fixed schedule of phases; a phase is either messages (seen by every other player) or a
simultaneous move of the players it names. Rule enforcement (who may act, whether a move is
legal, when a round or the game ends) lives here, once; a concrete game only deals the round,
lists its phases, validates a move and resolves the round.

Randomness: every draw of round ``r`` comes from ``numpy.random.default_rng([seed, r])`` and the
game-level draws (horizon, opener) from ``default_rng([seed, GAME_STREAM])``. Draws never depend
on actions, so games that share a seed (a seed group) see the same hands/values every round.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

ALICE, BOB = 0, 1
# Seat names in prompts and reports; seats past the list are "Player N".
PLAYER_NAMES: tuple[str, ...] = ("Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi")
GAME_STREAM = 1_000_003  # stream key of game-level draws, distinct from any round index


def player_name(seat: int) -> str:
    """The name of seat ``seat`` (0 = Alice, 1 = Bob, ...; "Player 9" past the named seats)."""
    return PLAYER_NAMES[seat] if 0 <= seat < len(PLAYER_NAMES) else f"Player {seat + 1}"


def others(seat: int, players: int) -> tuple[int, ...]:
    """The co-players of ``seat`` in a game of ``players`` seats, in seat order."""
    return tuple(p for p in range(players) if p != seat)


@dataclass(frozen=True)
class GameInfo:
    """A game's metadata, declared before play (a checkable contract).

    players: number of seats; simultaneous: every move phase has all players move at once
    (else moves alternate); reward_bounds: (lowest, highest) reward of one player in one round;
    max_rounds: the most rounds a game can last; messages: the game has chat phases;
    cooperation / defection: each player's reward per round when every player cooperates / when
    every player defects, where the game defines them (reference lines of plots, the
    exploitability baseline).
    """

    players: int
    simultaneous: bool
    reward_bounds: tuple[float, float]
    max_rounds: int
    messages: bool
    cooperation: float | None = None
    defection: float | None = None


class IllegalAction(ValueError):
    """An action that the rules do not allow (wrong player, wrong phase, out of range)."""


class Kind(StrEnum):
    """What a player is asked for: a free-text message or a move (proposal)."""

    MESSAGE = "message"
    MOVE = "move"


@dataclass(frozen=True)
class Phase:
    """One step of a round: who acts, and what they produce."""

    kind: Kind
    players: tuple[int, ...]


@dataclass(frozen=True)
class Event:
    """Something a player observes. Concrete games subclass it with structured fields."""

    round: int


@dataclass(frozen=True)
class MessageEvent(Event):
    """A chat message sent by ``sender`` (visible to every other player)."""

    sender: int
    text: str


class GameConfig(BaseModel):
    """Options shared by every game. Unknown keys and NaN or infinite numbers are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rounds: int = Field(10, ge=1, description="Rounds per game when the horizon is fixed.")
    continuation: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Random horizon: after each round the game continues with this probability "
        "(geometric, drawn per game from its seed). None = fixed `rounds`.",
    )
    max_rounds: int = Field(30, ge=1, description="Cap on the random horizon.")
    tell_horizon: bool = Field(False, description="Tell the agents how many rounds there are.")

    @model_validator(mode="after")
    def _cap_covers_rounds(self) -> GameConfig:
        if self.continuation is None and self.rounds > self.max_rounds:
            raise ValueError(f"rounds={self.rounds} exceeds max_rounds={self.max_rounds}")
        return self


def draw_horizon(config: GameConfig, seed: int) -> int:
    """Number of rounds of one game.

    Fixed: ``config.rounds``. Random: ``T = min(1 + G, max_rounds)`` with ``G ~ Geometric`` failures
    before the first stop, i.e. ``P(T > t) = p^t`` for continuation probability ``p``.
    """
    if config.continuation is None:
        return config.rounds
    rng = np.random.default_rng([seed, GAME_STREAM])
    # numpy's geometric counts trials up to the first success (>= 1); success = "stop".
    return int(min(rng.geometric(1.0 - config.continuation), config.max_rounds))


def allocate_claims(quantity: float, claims: tuple[float, ...]) -> tuple[float, ...]:
    """Split ``quantity`` among claims: granted if they fit, else scaled down pro rata.

    With ``D = max(Q, Σ_i c_i)``: claimant i receives ``Q·c_i/D``. Leftovers are lost. All claims
    zero gives zeros.
    """
    if quantity < 0 or any(c < 0 for c in claims):
        raise ValueError(f"negative allocation input: Q={quantity}, claims={claims}")
    denominator = max(quantity, math.fsum(claims))
    if denominator == 0:
        return tuple(0.0 for _ in claims)
    return tuple(quantity * c / denominator for c in claims)


def allocate(quantity: float, claim_a: float, claim_b: float) -> tuple[float, float]:
    """:func:`allocate_claims` of two claims."""
    a, b = allocate_claims(quantity, (claim_a, claim_b))
    return a, b


ConfigT = TypeVar("ConfigT", bound=GameConfig)
MoveT = TypeVar("MoveT")


@dataclass
class RoundOutcome:
    """What resolving a round produces: rewards, info for metrics, what each player sees (one
    per seat), and whether the game ends here before its horizon (e.g. a collapsed commons)."""

    rewards: tuple[float, ...]
    info: dict[str, Any]
    events: tuple[Event, ...]
    ends_game: bool = False


@dataclass
class Game(ABC, Generic[ConfigT, MoveT]):
    """An N-player iterated game. Subclasses declare ``describe`` and implement the
    ``_``-prefixed hooks.

    Use: while not ``done``: read ``phase``; give ``act`` one action per acting player (a ``str``
    for a message phase, a move for a move phase); observe with ``events(player)``.
    ``num_rounds`` is the drawn horizon, or the rounds played once a round ended the game early.
    """

    name: ClassVar[str]
    config_type: ClassVar[type[GameConfig]]
    reward_scale: ClassVar[float]  # divide rewards by this for learning (SPEC §1)

    config: ConfigT
    seed: int
    num_rounds: int = field(init=False)
    round: int = field(init=False, default=0)
    rewards: list[tuple[float, ...]] = field(init=False, default_factory=list)
    infos: list[dict[str, Any]] = field(init=False, default_factory=list)
    _events: tuple[list[Event], ...] = field(init=False, repr=False)
    _info: GameInfo = field(init=False, repr=False)
    _phase_index: int = field(init=False, default=0, repr=False)

    @classmethod
    def describe(cls, config: GameConfig) -> GameInfo:
        """The game's metadata under ``config`` (default: two players, simultaneous moves, the
        horizon's cap, no messages; reward bounds from ``_reward_bounds``)."""
        return GameInfo(2, True, cls._reward_bounds(config), cls.horizon_cap(config), False)

    @staticmethod
    def horizon_cap(config: GameConfig) -> int:
        """The most rounds a game under ``config`` can last."""
        return config.rounds if config.continuation is None else config.max_rounds

    @classmethod
    def _reward_bounds(cls, config: GameConfig) -> tuple[float, float]:
        """(lowest, highest) reward of one player in one round."""
        raise NotImplementedError(f"{cls.__name__} declares no reward bounds")

    @property
    def info(self) -> GameInfo:
        return self._info

    @property
    def num_players(self) -> int:
        return self.info.players

    def __post_init__(self) -> None:
        if not isinstance(self.config, self.config_type):
            raise TypeError(f"{self.name} needs a {self.config_type.__name__}")
        self._info = self.describe(self.config)
        self.num_rounds = draw_horizon(self.config, self.seed)
        self._events = tuple([] for _ in range(self.num_players))
        self._setup(np.random.default_rng([self.seed, GAME_STREAM, 1]))
        self._begin_round()

    # ---- hooks for concrete games -------------------------------------------------------------
    def _setup(self, rng: np.random.Generator) -> None:  # noqa: B027 - optional hook
        """Game-level draws (e.g. who opens). Default: none."""

    @abstractmethod
    def _deal(self, rng: np.random.Generator) -> tuple[Event, ...]:
        """Draw this round's private state; return the round-start event each player sees."""

    @abstractmethod
    def _phases(self) -> list[Phase]:
        """The phases of the current round, in order (the last one is the simultaneous move)."""

    @abstractmethod
    def _validate_move(self, player: int, move: MoveT) -> None:
        """Raise ``IllegalAction`` for an illegal move."""

    @abstractmethod
    def _resolve(self, moves: tuple[MoveT, ...]) -> RoundOutcome:
        """Rewards, info and the round-end events, given the moves of the phase's players in
        seat order."""

    # ---- the state machine ---------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.round >= self.num_rounds

    @property
    def phase(self) -> Phase:
        if self.done:
            raise IllegalAction("the game is over")
        return self._phases()[self._phase_index]

    def check_move(self, player: int, move: MoveT) -> None:
        """Raise ``IllegalAction`` if ``move`` is not legal for ``player`` now."""
        if self.phase.kind is not Kind.MOVE or player not in self.phase.players:
            raise IllegalAction(f"player {player} has no move to make now")
        self._validate_move(player, move)

    def events(self, player: int) -> list[Event]:
        """Everything ``player`` has observed so far, oldest first."""
        return list(self._events[player])

    def act(self, actions: Mapping[int, Any]) -> None:
        """Apply the actions of the players of the current phase (exactly those players)."""
        phase = self.phase
        if set(actions) != set(phase.players):
            raise IllegalAction(f"phase expects players {phase.players}, got {sorted(actions)}")
        if phase.kind is Kind.MESSAGE:
            for sender, text in actions.items():
                if not isinstance(text, str):
                    raise IllegalAction(f"a message must be a string, got {type(text).__name__}")
                message = MessageEvent(self.round, sender, text)
                for reader in others(sender, self.num_players):
                    self._events[reader].append(message)
            self._phase_index += 1
            return
        for player, move in actions.items():
            self._validate_move(player, move)
        outcome = self._resolve(tuple(actions[p] for p in sorted(actions)))
        if len(outcome.rewards) != self.num_players or len(outcome.events) != self.num_players:
            raise RuntimeError(
                f"{self.name} resolved a round without one reward and event per seat"
            )
        self.rewards.append(tuple(outcome.rewards))
        self.infos.append(outcome.info)
        for player in range(self.num_players):
            self._events[player].append(outcome.events[player])
        self.round += 1
        self._phase_index = 0
        if outcome.ends_game:
            self.num_rounds = self.round
        if not self.done:
            self._begin_round()

    def _begin_round(self) -> None:
        starts = self._deal(np.random.default_rng([self.seed, self.round]))
        for player in range(self.num_players):
            self._events[player].append(starts[player])

    def total_rewards(self) -> tuple[float, ...]:
        return tuple(
            math.fsum(r[player] for r in self.rewards) for player in range(self.num_players)
        )
