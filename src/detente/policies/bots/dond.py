"""Deal or No Deal bots. Both announce, in every message, the bundle they mean to keep
(``... x hats, y books, z balls.``), and read the other's latest announcement of the round with
:func:`find_items` (a message without one, or one above the stock, announces nothing)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from detente.games.base import Event, MessageEvent
from detente.games.dond import Dond, RoundStart
from detente.games.items import Items, bundles, worth
from detente.policies.bots.base import Bot
from detente.protocol.items import find_items, format_items


def current_round(events: Sequence[Event]) -> RoundStart:
    """The start event of the round being played (the last one dealt)."""
    return next(e for e in reversed(events) if isinstance(e, RoundStart))


def announced_demand(events: Sequence[Event], stock: Items) -> Items | None:
    """The bundle the other player last said it keeps this round, if any fits the stock.

    A seat's events hold only the other's messages, so every message of the round is theirs.
    """
    start = current_round(events)
    for event in reversed(events):
        if event is start:
            return None
        if isinstance(event, MessageEvent):
            demand = find_items(event.text)
            if demand is not None and all(d <= n for d, n in zip(demand, stock, strict=True)):
                return demand
    return None


def rest(stock: Items, taken: Items) -> Items:
    """What is left of the stock: ``stock − taken``."""
    return Items(*(n - t for n, t in zip(stock, taken, strict=True)))


@functools.cache
def fair_half(stock: Items, values: Items) -> Items:
    """The bundle worth closest to half the stock's worth ``V`` by own values.

    ``argmin_k (|2·w(k) − V|, −w(k), Σ_t k_t, k)`` over ``0 ≤ k ≤ stock``: ties go to the
    larger worth, then to fewer items (types worth 0 are given away), then lexicographically.
    """
    total = worth(stock, values)
    return min(
        bundles(stock),
        key=lambda k: (abs(2 * worth(k, values) - total), -worth(k, values), sum(k), k),
    )


class DondBot(Bot):
    game: ClassVar[str] = Dond.name


class Greedy(DondBot):
    """Keeps every unit of every type it values (> 0), gives away the rest; says so."""

    bot_name = "greedy"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Items:
        start = current_round(events)
        return Items(
            *(n if v > 0 else 0 for n, v in zip(start.stock, start.own_values, strict=True))
        )

    def message(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> str:
        return f"I want to keep {format_items(self.decide(events, player, rng))}."


class Fair(DondBot):
    """Aims at half of the stock's worth by its own values (``fair_half``, worth ``w_F``).

    Accepts the other's latest announced demand ``D`` when the rest, ``stock − D``, is worth at
    least ``w_F`` to it. Message: "Deal: I keep stock − D." when it accepts, else
    "I want to keep F.". Proposal: ``stock − D`` when it accepts, else ``F``. The rule needs no
    memory: a fair bot accepts its own announcements echoed back, so two fair bots that agree in
    messages propose complementary bundles.
    """

    bot_name = "fair"

    def _accepted(self, events: Sequence[Event]) -> Items | None:
        start = current_round(events)
        demand = announced_demand(events, start.stock)
        if demand is None:
            return None
        mine = rest(start.stock, demand)
        target = worth(fair_half(start.stock, start.own_values), start.own_values)
        return mine if worth(mine, start.own_values) >= target else None

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Items:
        accepted = self._accepted(events)
        if accepted is not None:
            return accepted
        start = current_round(events)
        return fair_half(start.stock, start.own_values)

    def message(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> str:
        accepted = self._accepted(events)
        if accepted is not None:
            return f"Deal: I keep {format_items(accepted)}."
        return f"I want to keep {format_items(self.decide(events, player, rng))}."


BOTS: tuple[type[Bot], ...] = (Greedy, Fair)
