"""Commons harvest (the GovSim fishery): N players fish a shared lake that regrows.

The lake holds ``S`` tons (``stock``, 100), at most ``K`` (``capacity``, 100). Each round every
player requests, at the same time, an integer from 0 to the current stock (no cap per player).

* Harvest: if the requests fit (``Σ_j q_j ≤ S``) each player catches its request; else the
  stock is shared in proportion to the requests (:func:`allocate_claims`) and rounded down to
  whole tons, ``h_i = ⌊S·q_i / Σ_j q_j⌋``; the tons lost to rounding stay in the lake, so the
  stock is always a whole number. (Exact in floating point: ``S·q_i`` is an exact integer, the
  division is correctly rounded, and a non-integer quotient is at least ``1/Σ_j q_j`` away
  from an integer.)
* Reward: ``reward_i = h_i``, the tons caught.
* Regrowth: with ``R = S − Σ_j h_j`` left, next round's stock is ``min(2·R, K)``.
* Collapse: if ``R < collapse_below`` (5, GovSim's threshold) the lake collapses and the game
  ends after this round (``RoundOutcome.ends_game``); with ``R = 0`` it could never regrow.

Sustainable play: harvesting ``⌊S/(2N)⌋`` each takes at most ``S/2``, so ``R ≥ S/2`` and
``2R ≥ S``: the stock never falls, and at capacity it stays at capacity (at the defaults, 10
tons each of 100, GovSim's sustainable catch). No random draws besides the chat's opener (drawn
once per game from the seed when ``messages_per_player > 0``, as in ``ChatGame``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from detente.games.base import (
    Event,
    GameConfig,
    GameInfo,
    IllegalAction,
    RoundOutcome,
    allocate_claims,
)
from detente.games.chat import ChatConfig, ChatGame


class CommonsConfig(ChatConfig):
    """Players, initial stock, capacity, collapse threshold; chat off by default."""

    players: int = Field(5, ge=2, description="Number of players N (GovSim: 5).")
    stock: int = Field(100, ge=1, description="Tons in the lake at the start (S₀).")
    capacity: int = Field(100, ge=1, description="Most tons the lake holds after regrowth (K).")
    collapse_below: int = Field(
        5,
        ge=0,
        description="The lake collapses, ending the game, when fewer tons than this are left "
        "after a harvest (0 = never ends early).",
    )
    messages_per_player: int = Field(
        0,
        ge=0,
        description="Messages each player sends per round before fishing, in seat order from "
        "the round's opener (0 = no communication).",
    )

    @model_validator(mode="after")
    def _stock_fits(self) -> CommonsConfig:
        if not self.collapse_below <= self.stock <= self.capacity:
            raise ValueError(
                f"needs collapse_below <= stock <= capacity, got {self.collapse_below}, "
                f"{self.stock}, {self.capacity}"
            )
        return self


@dataclass(frozen=True)
class RoundStart(Event):
    """A new round: the tons in the lake, the number of players, who opens the chat (``None``:
    no chat)."""

    stock: int
    players: int
    opener: int | None


@dataclass(frozen=True)
class RoundEnd(Event):
    """Everything public after a round: requests and catches in seat order, the observer's own,
    the tons left and the stock after regrowth, and whether the lake collapsed."""

    stock: int
    own_request: int
    requests: tuple[int, ...]
    own_harvest: int
    harvests: tuple[int, ...]
    remaining: int
    next_stock: int
    collapsed: bool


def harvest(stock: int, requests: tuple[int, ...]) -> tuple[int, ...]:
    """Tons each player catches: ``⌊allocate_claims(S, q)_i⌋`` (the requests if they fit)."""
    return tuple(math.floor(units) for units in allocate_claims(stock, requests))


def regrow(remaining: int, capacity: int) -> int:
    """Next round's stock: ``min(2·R, K)``."""
    return min(2 * remaining, capacity)


class Commons(ChatGame[CommonsConfig, int]):
    """Moves are requests: the integer tons a player asks to catch, ``0..stock``."""

    name: ClassVar[str] = "commons"
    config_type: ClassVar[type[CommonsConfig]] = CommonsConfig
    # The sustainable catch at the defaults, K/(2N) = 10 tons: one round is O(1).
    reward_scale: ClassVar[float] = 10.0

    _stock: int

    @classmethod
    def describe(cls, config: GameConfig) -> GameInfo:
        """Max rounds is the horizon's cap (a collapse only shortens a game). Cooperation: the
        sustainable catch of a full lake, ``⌊K/(2N)⌋`` a round for the whole game; defection
        is left undeclared (everyone greedy catches ``K/N`` once and the game ends: no
        per-round reward comparable to cooperation's)."""
        assert isinstance(config, CommonsConfig)
        return GameInfo(
            config.players,
            True,
            cls._reward_bounds(config),
            cls.horizon_cap(config),
            config.messages_per_player > 0,
            cooperation=float(config.capacity // (2 * config.players)),
        )

    @classmethod
    def _reward_bounds(cls, config: GameConfig) -> tuple[float, float]:
        """Nothing caught, or the whole lake at capacity."""
        assert isinstance(config, CommonsConfig)
        return 0.0, float(config.capacity)

    @property
    def stock(self) -> int:
        """Tons in the lake now (at the start of the current round; after the last round, the
        regrown stock)."""
        return self._stock

    def _setup(self, rng: np.random.Generator) -> None:
        super()._setup(rng)
        self._stock = self.config.stock

    def _deal(self, rng: np.random.Generator) -> tuple[Event, ...]:
        opener = self.opener if self.config.messages_per_player else None
        start = RoundStart(self.round, self._stock, self.num_players, opener)
        return (start,) * self.num_players

    def _validate_move(self, player: int, move: int) -> None:
        if isinstance(move, bool) or not isinstance(move, int):
            raise IllegalAction(f"a harvest request must be an int, got {move!r}")
        if not 0 <= move <= self._stock:
            raise IllegalAction(f"request {move} outside 0..{self._stock} (the stock)")

    def _resolve(self, moves: tuple[int, ...]) -> RoundOutcome:
        c = self.config
        stock, requests = self._stock, tuple(moves)
        harvests = harvest(stock, requests)
        remaining = stock - sum(harvests)
        collapsed = remaining < c.collapse_below
        self._stock = regrow(remaining, c.capacity)
        rewards = tuple(float(h) for h in harvests)
        info = {
            "stock": stock,
            "requests": list(requests),
            "harvests": list(harvests),
            "rewards": list(rewards),
            "harvested": sum(harvests),
            "remaining": remaining,
            "next_stock": self._stock,
            "collapsed": collapsed,
        }
        events = tuple(
            RoundEnd(
                self.round,
                stock=stock,
                own_request=requests[p],
                requests=requests,
                own_harvest=harvests[p],
                harvests=harvests,
                remaining=remaining,
                next_stock=self._stock,
                collapsed=collapsed,
            )
            for p in range(c.players)
        )
        return RoundOutcome(rewards, info, events, ends_game=collapsed)
