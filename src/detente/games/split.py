"""Split without communication (SPEC §1.3): claim units of three item types, values public.

Each round there are ``quantity`` units of each item type (hats, books, balls). Each player values
each type at ``LOW_VALUE`` (1) or ``HIGH_VALUE`` (10) per unit; both value vectors are public. No
messages: both players claim at once how many units of each type they keep, and every type is
shared with :func:`allocate`.

Draws (from the round's generator ``default_rng([seed, r])``, never from actions): both vectors
are drawn uniformly from ``{1, 10}^3``, redrawn until the two totals are equal and the vectors
differ. That leaves 12 equally likely profiles: 6 where each player has one high type (different
ones) and 6 where each has two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pydantic import Field

from detente.games.base import (
    ALICE,
    BOB,
    Event,
    Game,
    GameConfig,
    Kind,
    Phase,
    RoundOutcome,
    allocate,
)
from detente.games.items import ITEM_TYPES, MAX_UNITS, Items, check_bundle, worth

LOW_VALUE, HIGH_VALUE = 1, 10


class SplitConfig(GameConfig):
    """Units per item type (at most ``MAX_UNITS``, the largest count a proposal can hold)."""

    quantity: int = Field(10, ge=1, le=MAX_UNITS, description="Units of each item type per round.")


@dataclass(frozen=True)
class RoundStart(Event):
    """A new round: the units at stake and both players' per-unit values (all public)."""

    quantities: Items
    own_values: Items
    other_values: Items


@dataclass(frozen=True)
class RoundEnd(Event):
    """Both proposals, the units the observer received, and both rewards."""

    own_proposal: Items
    other_proposal: Items
    own_units: tuple[float, ...]
    own_reward: float
    other_reward: float


def draw_values(rng: np.random.Generator) -> tuple[Items, Items]:
    """(Alice's, Bob's) values: uniform on ``{1,10}^3`` each, redrawn until equal totals and
    different vectors."""
    while True:
        high = rng.integers(2, size=(2, len(ITEM_TYPES))).astype(bool)
        a, b = (Items(*(HIGH_VALUE if h else LOW_VALUE for h in row)) for row in high)
        if sum(a) == sum(b) and a != b:
            return a, b


class Split(Game[SplitConfig, Items]):
    """Moves are proposals: the units of each type a player keeps, ``0..quantity`` each."""

    name: ClassVar[str] = "split"
    config_type: ClassVar[type[SplitConfig]] = SplitConfig
    reward_scale: ClassVar[float] = 100.0

    _values: tuple[Items, Items]

    @classmethod
    def _reward_bounds(cls, config: GameConfig) -> tuple[float, float]:
        assert isinstance(config, SplitConfig)
        return 0.0, config.quantity * len(ITEM_TYPES) * HIGH_VALUE

    @property
    def quantities(self) -> Items:
        q = self.config.quantity
        return Items(q, q, q)

    @property
    def values(self) -> tuple[Items, Items]:
        """Per-unit values of the current (last dealt) round, (Alice's, Bob's)."""
        return self._values

    def _deal(self, rng: np.random.Generator) -> tuple[Event, Event]:
        self._values = a, b = draw_values(rng)
        q = self.quantities
        return RoundStart(self.round, q, a, b), RoundStart(self.round, q, b, a)

    def _phases(self) -> list[Phase]:
        return [Phase(Kind.MOVE, (ALICE, BOB))]

    def _validate_move(self, player: int, move: Items) -> None:
        check_bundle(move, self.quantities)

    def _resolve(self, moves: tuple[Items, Items]) -> RoundOutcome:
        """Per type ``t``: ``(u_A,t, u_B,t) = allocate(q_t, a_t, b_t)``; ``r_i = Σ_t u_i,t v_i,t``.

        Efficiency ``= (r_A + r_B) / Σ_t q_t · max(v_A,t, v_B,t)`` (1 = every unit to whoever
        values it most).
        """
        q, values = self.quantities, self._values
        per_type = [allocate(n, a, b) for n, a, b in zip(q, *moves, strict=True)]
        units = (tuple(u[ALICE] for u in per_type), tuple(u[BOB] for u in per_type))
        rewards = (worth(units[ALICE], values[ALICE]), worth(units[BOB], values[BOB]))
        best = worth(q, [max(pair) for pair in zip(*values, strict=True)])
        info = {
            "values": [list(v) for v in values],
            "proposals": [list(m) for m in moves],
            "units": [list(u) for u in units],
            "rewards": list(rewards),
            "collective": sum(rewards),
            "max_collective": best,
            "efficiency": sum(rewards) / best,
        }
        events = tuple(
            RoundEnd(self.round, moves[p], moves[1 - p], units[p], rewards[p], rewards[1 - p])
            for p in (ALICE, BOB)
        )
        return RoundOutcome(rewards, info, (events[ALICE], events[BOB]))
