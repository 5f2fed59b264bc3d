"""Deal or No Deal (SPEC §1.4): negotiate over a small stock; a deal needs exact agreement.

Each round there is a stock of hats, books and balls. Each player has private integer per-unit
values summing to ``VALUE_TOTAL`` (10). After the messages (the opener first, alternating,
``messages_per_player`` each) both propose at once what they keep. The deal is made only if the
proposals are complementary (``k_A + k_B = stock`` for every type); then player ``i`` scores
``Σ_t k_i,t · v_i,t``, otherwise both score 0. A proposal must lie within the stock
(``0 ≤ k_t ≤ stock_t``); the game raises ``IllegalAction`` otherwise (the text protocol does not
know the round's stock, so it only checks the format).

Draws (all from the seed, never from actions):

* the opener of round 0 is drawn once per game in ``_setup``; the opener alternates every round;
* stock (round generator): the total ``N`` is uniform on ``min_stock..max_stock``, then the
  counts are uniform over the ``C(N-1, 2)`` ways to write ``N`` as three positive parts;
* values (round generator, after the stock): each player's vector is uniform over the 66 ways
  to write 10 as three non-negative parts, both redrawn until every type is valued by someone
  and at least one type is valued by both.

Where the authors' code (which never ran this game) differs, ``rules`` chooses
(:class:`DondRules`). ``detente`` (the default) is the above: values redrawn every round, every
type in every stock, and a player never sees the other's values. ``authors`` follows their
rules: the values are drawn once per game (round 0's generator, after its stock) and kept;
a stock's counts are uniform over the ``C(N+2, 2)`` ways to write ``N`` as three non-negative
parts, so a type may be missing from a round (``max_stock`` is then at most ``MAX_UNITS``);
and after each round a player is shown the other's values. Both rule sets draw uniformly over
compositions, where the authors cut at sorted independent uniform points (not uniform over
compositions); the value constraints are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from detente.games.base import (
    ALICE,
    BOB,
    Event,
    GameConfig,
    RoundOutcome,
)
from detente.games.chat import ChatConfig, ChatGame
from detente.games.items import ITEM_TYPES, MAX_UNITS, Items, check_bundle, worth

VALUE_TOTAL = 10


class DondRules(StrEnum):
    """Which Deal or No Deal: ours (SPEC §1.4) or the authors' (see the module docstring)."""

    DETENTE = "detente"  # values redrawn every round; every type in the stock; values private
    AUTHORS = "authors"  # values fixed per game; types may be missing; values shown after a round


class DondConfig(ChatConfig):
    """Stock size range, chat quota and rule set."""

    min_stock: int = Field(
        5, ge=len(ITEM_TYPES), description="Fewest items in a round's stock (all types)."
    )
    max_stock: int = Field(
        7,
        le=MAX_UNITS + len(ITEM_TYPES) - 1,
        description="Most items in a round's stock (so that no type exceeds MAX_UNITS).",
    )
    rules: DondRules = Field(
        DondRules.DETENTE,
        description="detente: values redrawn every round, every item type in every stock, "
        "values private; authors (their code): values drawn once per game, a stock may lack a "
        "type, each player shown the other's values after every round.",
    )

    @model_validator(mode="after")
    def _range(self) -> DondConfig:
        if self.min_stock > self.max_stock:
            raise ValueError(f"min_stock={self.min_stock} exceeds max_stock={self.max_stock}")
        if self.rules is DondRules.AUTHORS and self.max_stock > MAX_UNITS:
            raise ValueError(
                f"max_stock={self.max_stock} exceeds {MAX_UNITS} with rules=authors (one type "
                "may hold the whole stock)"
            )
        return self


@dataclass(frozen=True)
class RoundStart(Event):
    """A new round: the stock, the observer's own values, whether it opens the chat."""

    stock: Items
    own_values: Items
    opens: bool


@dataclass(frozen=True)
class RoundEnd(Event):
    """Both proposals, whether they made a deal, the observer's reward and, under the authors'
    rules only, the other's values (None otherwise)."""

    own_proposal: Items
    other_proposal: Items
    agreed: bool
    own_reward: float
    other_values: Items | None = None


def composition(rng: np.random.Generator, total: int, minimum: int) -> Items:
    """Uniform over the ways to write ``total`` as three parts ``≥ minimum`` (0 or 1).

    Stars and bars: two distinct cut positions among ``total − 3·minimum + 2`` slots.
    """
    slots = total - len(ITEM_TYPES) * minimum + 2
    c1, c2 = sorted(int(c) for c in rng.choice(slots, size=2, replace=False))
    parts = (c1, c2 - c1 - 1, slots - 1 - c2)
    return Items(*(p + minimum for p in parts))


def valid_values(a: Items, b: Items) -> bool:
    """Every type valued by someone, and some type valued by both."""
    pairs = list(zip(a, b, strict=True))
    return all(x > 0 or y > 0 for x, y in pairs) and any(x > 0 and y > 0 for x, y in pairs)


def draw_stock(rng: np.random.Generator, min_stock: int, max_stock: int, minimum: int = 1) -> Items:
    """``N ~ U{min_stock..max_stock}``, then a uniform composition of ``N`` into parts
    ``≥ minimum`` (1: every type present; 0: a type may be missing)."""
    return composition(rng, int(rng.integers(min_stock, max_stock + 1)), minimum)


def draw_values(rng: np.random.Generator) -> tuple[Items, Items]:
    """(Alice's, Bob's) values: uniform compositions of 10, redrawn until ``valid_values``."""
    while True:
        a, b = composition(rng, VALUE_TOTAL, 0), composition(rng, VALUE_TOTAL, 0)
        if valid_values(a, b):
            return a, b


def complementary(a: Items, b: Items, stock: Items) -> bool:
    """``a_t + b_t = stock_t`` for every type."""
    return all(x + y == n for x, y, n in zip(a, b, stock, strict=True))


class Dond(ChatGame[DondConfig, Items]):
    """Moves are proposals: the units of each type a player keeps, within the stock."""

    name: ClassVar[str] = "dond"
    config_type: ClassVar[type[DondConfig]] = DondConfig
    reward_scale: ClassVar[float] = 10.0

    _stock: Items
    _values: tuple[Items, Items]

    @classmethod
    def _reward_bounds(cls, config: GameConfig) -> tuple[float, float]:
        assert isinstance(config, DondConfig)
        return 0.0, float(config.max_stock * VALUE_TOTAL)  # every unit at a value of at most 10

    @property
    def stock(self) -> Items:
        """The stock of the current (last dealt) round."""
        return self._stock

    @property
    def values(self) -> tuple[Items, Items]:
        """Per-unit values of the current (last dealt) round, (Alice's, Bob's)."""
        return self._values

    def _deal(self, rng: np.random.Generator) -> tuple[Event, Event]:
        """The round's stock, then (every round, or in round 0 only under the authors' rules)
        the values."""
        c = self.config
        authors = c.rules is DondRules.AUTHORS
        self._stock = draw_stock(rng, c.min_stock, c.max_stock, 0 if authors else 1)
        if not authors or self.round == 0:
            self._values = draw_values(rng)
        (a, b), stock, opener = self._values, self._stock, self.opener
        return (
            RoundStart(self.round, stock, a, opener == ALICE),
            RoundStart(self.round, stock, b, opener == BOB),
        )

    def _validate_move(self, player: int, move: Items) -> None:
        check_bundle(move, self._stock)

    def _resolve(self, moves: tuple[Items, Items]) -> RoundOutcome:
        """Deal iff ``k_A + k_B = stock``; then ``r_i = Σ_t k_i,t · v_i,t``, else ``(0, 0)``."""
        agreed = complementary(moves[ALICE], moves[BOB], self._stock)
        rewards = (
            (worth(moves[ALICE], self._values[ALICE]), worth(moves[BOB], self._values[BOB]))
            if agreed
            else (0.0, 0.0)
        )
        info = {
            "opener": self.opener,
            "stock": list(self._stock),
            "values": [list(v) for v in self._values],
            "proposals": [list(m) for m in moves],
            "agreed": agreed,
            "rewards": list(rewards),
        }
        shown = self.config.rules is DondRules.AUTHORS
        events = tuple(
            RoundEnd(
                self.round,
                moves[p],
                moves[1 - p],
                agreed,
                rewards[p],
                self._values[1 - p] if shown else None,
            )
            for p in (ALICE, BOB)
        )
        return RoundOutcome(rewards, info, (events[ALICE], events[BOB]))
