"""N-player Iterated Prisoner's Dilemma: a pairwise IPD between every two players at once.

The three-player game of the NeurIPS 2025 MindGames challenge (TextArena's ``ThreePlayerIPD``),
for any number of players from 2 and without its chat turns. Each round every player chooses,
simultaneously, cooperate or defect *toward each co-player separately*: a move is a tuple of
N−1 :class:`Move` values, toward the co-players in seat order (for seat ``i``, toward
``others(i, N)``). Each unordered pair {i, j} plays its own IPD with the IPD's payoffs, and a
player's round reward is the sum over its co-players j of ``payoff(i's move toward j, j's move
toward i)``. With two players this is exactly :class:`~detente.games.ipd.IPD` (same payoffs,
same horizon draws, same ``info["moves"]``).

Everything is public, as in MindGames, where the round's results are announced to all: each
seat's :class:`RoundEnd` holds the whole move matrix and every pairwise reward.

``reward_scale`` is a class constant (the base declares it so): 5, the scale of one pairwise
game, so one round's scaled reward spans (N−1)·[S/5, T/5], i.e. up to N−1 with the default
payoffs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, TypeVar

import numpy as np
from pydantic import Field

from detente.games.base import (
    PLAYER_NAMES,
    Event,
    Game,
    GameConfig,
    GameInfo,
    IllegalAction,
    Kind,
    Phase,
    RoundOutcome,
    others,
)
from detente.games.ipd import IPDConfig, Move

T = TypeVar("T")


class MultiIPDConfig(IPDConfig):
    """The IPD's payoffs (T > R > P > S, checked by ``IPDConfig``) and the number of players."""

    players: int = Field(
        3,
        ge=2,
        le=len(PLAYER_NAMES),
        description="Number of players; at most as many as there are seat names (replies name "
        "the co-players), and a move has 2^(players−1) values.",
    )


class Addressed(tuple[Move, ...]):
    """Moves that also name the seats they are addressed to (``toward``), as a reply does.

    It compares, hashes and serialises as the plain tuple of moves; the game checks that
    ``toward`` is the mover's co-players in seat order, so a reply that names the wrong players
    is illegal rather than read as if it had named the right ones.
    """

    toward: tuple[int, ...]

    def __new__(cls, moves: Sequence[Move], toward: Sequence[int]) -> Addressed:
        if len(moves) != len(toward):
            raise ValueError(f"{len(moves)} moves addressed to {len(toward)} seats")
        self = super().__new__(cls, moves)
        self.toward = tuple(toward)
        return self

    def __getnewargs__(self) -> tuple[tuple[Move, ...], tuple[int, ...]]:  # type: ignore[override]
        return tuple(self), self.toward

    def __repr__(self) -> str:
        return f"Addressed({tuple(self)!r}, toward={self.toward!r})"


def toward(rows: Sequence[Sequence[T]], i: int, j: int) -> T:
    """Seat ``i``'s entry about seat ``j`` in rows shaped like the moves (``rows[i]`` lists one
    entry per seat of ``others(i)``): i's move toward j, or i's reward from its game with j."""
    if i == j:
        raise ValueError(f"seat {i} has no entry about itself")
    return rows[i][j - (j > i)]


def pairwise_rewards(
    moves: Sequence[Sequence[Move]], payoff: dict[tuple[Move, Move], float]
) -> tuple[tuple[float, ...], ...]:
    """``r[i][k] = payoff(m_ij, m_ji)`` with ``j = others(i)[k]``: what seat i gets from its
    game with each co-player (rows shaped like ``moves``)."""
    n = len(moves)
    return tuple(
        tuple(payoff[toward(moves, i, j), toward(moves, j, i)] for j in others(i, n))
        for i in range(n)
    )


@dataclass(frozen=True)
class RoundStart(Event):
    """A new round; ``co_players``: the seats the observer chooses a move toward, in order."""

    co_players: tuple[int, ...]


@dataclass(frozen=True)
class RoundEnd(Event):
    """The round as ``player`` sees it: the whole move matrix (``moves[i]``: seat i's moves
    toward ``others(i)``) and every pairwise reward (``pair_rewards``, shaped alike); the
    observer's view of them as properties."""

    player: int
    moves: tuple[tuple[Move, ...], ...]
    pair_rewards: tuple[tuple[float, ...], ...]

    @property
    def co_players(self) -> tuple[int, ...]:
        return others(self.player, len(self.moves))

    @property
    def own_moves(self) -> tuple[Move, ...]:
        """The observer's moves toward each co-player."""
        return self.moves[self.player]

    @property
    def other_moves(self) -> tuple[Move, ...]:
        """Each co-player's move toward the observer (co-players in seat order)."""
        return tuple(toward(self.moves, j, self.player) for j in self.co_players)

    @property
    def rewards(self) -> tuple[float, ...]:
        """Every seat's round reward (the sum of its pairwise rewards)."""
        return tuple(math.fsum(row) for row in self.pair_rewards)

    @property
    def own_reward(self) -> float:
        return self.rewards[self.player]


class MultiIPD(Game[MultiIPDConfig, tuple[Move, ...]]):
    name: ClassVar[str] = "multi-ipd"
    config_type: ClassVar[type[MultiIPDConfig]] = MultiIPDConfig
    reward_scale: ClassVar[float] = 5.0  # of one pairwise game (see the module docstring)

    @classmethod
    def describe(cls, config: GameConfig) -> GameInfo:
        assert isinstance(config, MultiIPDConfig)
        pairs = config.players - 1  # everyone cooperating: R from each pairwise game, etc.
        return replace(
            super().describe(config),
            players=config.players,
            cooperation=pairs * config.reward,
            defection=pairs * config.punishment,
        )

    @classmethod
    def _reward_bounds(cls, config: GameConfig) -> tuple[float, float]:
        assert isinstance(config, MultiIPDConfig)
        pairs = config.players - 1
        return pairs * config.sucker, pairs * config.temptation

    def payoffs(self) -> dict[tuple[Move, Move], float]:
        """(own move, other's move) → own payoff of one pairwise game."""
        c, d, config = Move.COOPERATE, Move.DEFECT, self.config
        return {
            (c, c): config.reward,
            (c, d): config.sucker,
            (d, c): config.temptation,
            (d, d): config.punishment,
        }

    def _deal(self, rng: np.random.Generator) -> tuple[Event, ...]:
        n = self.num_players
        return tuple(RoundStart(self.round, others(p, n)) for p in range(n))

    def _phases(self) -> list[Phase]:
        return [Phase(Kind.MOVE, tuple(range(self.num_players)))]

    def _validate_move(self, player: int, move: tuple[Move, ...]) -> None:
        co_players = others(player, self.num_players)
        if not isinstance(move, tuple) or not all(isinstance(m, Move) for m in move):
            raise IllegalAction(f"a {self.name} move is a tuple of Moves, got {move!r}")
        if len(move) != len(co_players):
            raise IllegalAction(
                f"{len(move)} moves for {len(co_players)} co-players (one toward each)"
            )
        if isinstance(move, Addressed) and move.toward != co_players:
            named = ", ".join(PLAYER_NAMES[s] for s in move.toward)
            expected = ", ".join(PLAYER_NAMES[s] for s in co_players)
            raise IllegalAction(
                f"{PLAYER_NAMES[player]}'s moves must name {expected} (in that order), not {named}"
            )

    def _resolve(self, moves: tuple[tuple[Move, ...], ...]) -> RoundOutcome:
        matrix = tuple(tuple(m) for m in moves)  # plain tuples: events hold no reply's names
        pair_rewards = pairwise_rewards(matrix, self.payoffs())
        rewards = tuple(math.fsum(row) for row in pair_rewards)
        info = {
            "moves": ["".join(m.value for m in row) for row in matrix],
            "cooperated": [row.count(Move.COOPERATE) / len(row) for row in matrix],
        }
        events = tuple(RoundEnd(self.round, p, matrix, pair_rewards) for p in range(len(matrix)))
        return RoundOutcome(rewards, info, events)
