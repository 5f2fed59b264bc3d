"""Split bots: the reference strategies of SPEC §1.3."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from detente.games.base import Event
from detente.games.items import Items
from detente.games.split import RoundStart, Split
from detente.policies.bots.base import Bot


def current_round(events: Sequence[Event]) -> RoundStart:
    """The start event of the round being played (the last one dealt)."""
    return next(e for e in reversed(events) if isinstance(e, RoundStart))


class SplitBot(Bot):
    game: ClassVar[str] = Split.name


class Greedy(SplitBot):
    """Claims every unit of every type."""

    bot_name = "greedy"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Items:
        return current_round(events).quantities


class Welfare(SplitBot):
    """Every type to whoever values it more: claims ``q`` if its value is higher, 0 if lower,
    ``⌊q/2⌋`` on a tie (5 of 10)."""

    bot_name = "welfare"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Items:
        start = current_round(events)
        return Items(
            *(
                q if own > other else 0 if own < other else q // 2
                for q, own, other in zip(
                    start.quantities, start.own_values, start.other_values, strict=True
                )
            )
        )


class Half(SplitBot):
    """Claims half of every type, ``⌊q/2⌋`` (5 of 10)."""

    bot_name = "half"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Items:
        return Items(*(q // 2 for q in current_round(events).quantities))


BOTS: tuple[type[Bot], ...] = (Greedy, Welfare, Half)
