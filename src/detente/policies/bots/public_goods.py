"""Public goods bots: free rider, full contributor, conditional cooperator, grim trigger.

Every bot announces its contribution in its messages ("I will put in 10 coins.") when the game
has a chat, and then gives what it announced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from detente.games.base import Event, others
from detente.games.public_goods import PublicGoods, RoundEnd, RoundStart
from detente.policies.bots.base import Bot


def _history(events: Sequence[Event]) -> list[RoundEnd]:
    return [e for e in events if isinstance(e, RoundEnd)]


def _endowment(events: Sequence[Event]) -> int:
    return next(e for e in reversed(events) if isinstance(e, RoundStart)).endowment


def others_gave(end: RoundEnd, player: int) -> list[int]:
    """The co-players' contributions of a round, in seat order."""
    return [end.contributions[p] for p in others(player, len(end.contributions))]


def mean_rounded_half_up(values: Sequence[int]) -> int:
    """The mean of integers rounded to the nearest integer, halves up (2.5 → 3): exact in
    integers, ``⌊(2Σv + k) / 2k⌋`` for ``k`` values."""
    k = len(values)
    return (2 * sum(values) + k) // (2 * k)


class PublicGoodsBot(Bot):
    """Default message: the contribution the bot is about to make."""

    game: ClassVar[str] = PublicGoods.name

    def message(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> str:
        return f"I will put in {self.decide(events, player, rng)} coins."


class FreeRider(PublicGoodsBot):
    """Gives nothing, ever (the dominant move of one round)."""

    bot_name = "free-rider"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        return 0


class FullContributor(PublicGoodsBot):
    """Gives its whole endowment, ever."""

    bot_name = "full-contributor"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        return _endowment(events)


class Conditional(PublicGoodsBot):
    """Conditional cooperator: the whole endowment in the first round, then the mean of the
    co-players' contributions of the previous round, rounded to the nearest integer with halves
    up (:func:`mean_rounded_half_up`: a tie never lowers the group's giving)."""

    bot_name = "conditional"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        history = _history(events)
        if not history:
            return _endowment(events)
        return mean_rounded_half_up(others_gave(history[-1], player))


class Grim(PublicGoodsBot):
    """Grim trigger: the whole endowment until a co-player gives less than half the endowment
    in some round (< 5 of 10: ``2c < E``), then nothing forever."""

    bot_name = "grim"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        endowment = _endowment(events)
        triggered = any(
            2 * given < endowment for end in _history(events) for given in others_gave(end, player)
        )
        return 0 if triggered else endowment


BOTS: tuple[type[Bot], ...] = (FreeRider, FullContributor, Conditional, Grim)
