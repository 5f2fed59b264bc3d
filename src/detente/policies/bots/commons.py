"""Commons harvest bots: greedy, sustainable, retaliator.

Every bot announces its catch in its messages ("I will catch 10 tons.") when the game has a
chat, and then requests what it announced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from detente.games.base import Event, others
from detente.games.commons import Commons, RoundEnd, RoundStart
from detente.policies.bots.base import Bot


def _start(events: Sequence[Event]) -> RoundStart:
    return next(e for e in reversed(events) if isinstance(e, RoundStart))


def sustainable_share(stock: int, players: int) -> int:
    """``⌊S/(2N)⌋``: if everyone takes it, at most half the stock is caught, and the half left
    doubles back to at least ``S`` (to the capacity when ``S`` is the capacity)."""
    return stock // (2 * players)


def overfished(end: RoundEnd, player: int) -> bool:
    """Whether the co-players caught more, in total, than their sustainable shares of that
    round's stock: ``Σ_{j≠i} h_j > (N−1)·⌊S/(2N)⌋``."""
    n = len(end.harvests)
    caught = sum(end.harvests[p] for p in others(player, n))
    return caught > (n - 1) * sustainable_share(end.stock, n)


class CommonsBot(Bot):
    """Default message: the catch the bot is about to request."""

    game: ClassVar[str] = Commons.name

    def message(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> str:
        return f"I will catch {self.decide(events, player, rng)} tons."


class Greedy(CommonsBot):
    """Requests the whole stock, every round."""

    bot_name = "greedy"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        return _start(events).stock


class Sustainable(CommonsBot):
    """Requests its share of the regrowth, :func:`sustainable_share` of the current stock (10
    of 100 with 5 players)."""

    bot_name = "sustainable"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        start = _start(events)
        return sustainable_share(start.stock, start.players)


class Retaliator(CommonsBot):
    """Sustainable until the co-players overfish once (:func:`overfished`), then greedy for
    the rest of the game: unforgiving, since a lake being overfished is worth racing for
    before it collapses."""

    bot_name = "retaliator"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        start = _start(events)
        if any(overfished(e, player) for e in events if isinstance(e, RoundEnd)):
            return start.stock
        return sustainable_share(start.stock, start.players)


BOTS: tuple[type[Bot], ...] = (Greedy, Sustainable, Retaliator)
