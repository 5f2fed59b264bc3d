"""IPD bots: the classic strategies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from detente.games.base import Event
from detente.games.ipd import IPD, Move, RoundEnd
from detente.policies.bots.base import Bot

C, D = Move.COOPERATE, Move.DEFECT


def _history(events: Sequence[Event]) -> list[RoundEnd]:
    return [e for e in events if isinstance(e, RoundEnd)]


class IPDBot(Bot):
    game: ClassVar[str] = IPD.name


class AlwaysCooperate(IPDBot):
    bot_name = "always-cooperate"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Move:
        return C


class AlwaysDefect(IPDBot):
    bot_name = "always-defect"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Move:
        return D


class TitForTat(IPDBot):
    """Cooperate first, then copy the other's previous move."""

    bot_name = "tit-for-tat"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Move:
        history = _history(events)
        return history[-1].other_move if history else C


class Grim(IPDBot):
    """Cooperate until the other defects once, then defect forever."""

    bot_name = "grim"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Move:
        return D if any(e.other_move is D for e in _history(events)) else C


class WinStayLoseShift(IPDBot):
    """Pavlov: repeat the last move after a good payoff (R or T), switch after a bad one."""

    bot_name = "wsls"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Move:
        history = _history(events)
        if not history:
            return C
        last = history[-1]
        return last.own_move if last.other_move is C else (D if last.own_move is C else C)


class Random(IPDBot):
    bot_name = "random"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Move:
        return C if rng.random() < 0.5 else D


class Alternator(IPDBot):
    """Cooperate, defect, cooperate, ..."""

    bot_name = "alternator"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Move:
        return C if len(_history(events)) % 2 == 0 else D


class Forgiving(IPDBot):
    """Reciprocal and forgiving (a stochastic generous tit-for-tat): cooperates with probability
    ``P_FIRST`` in the first round, ``P_AFTER_C`` after the other cooperated and ``P_AFTER_D``
    after it defected. The ``tiny`` warm start's IPD persona."""

    bot_name = "forgiving"
    P_FIRST, P_AFTER_C, P_AFTER_D = 0.95, 0.95, 0.6

    def move_probabilities(self, events: Sequence[Event], player: int) -> dict[Move, float]:
        history = _history(events)
        if not history:
            p = self.P_FIRST
        else:
            p = self.P_AFTER_C if history[-1].other_move is C else self.P_AFTER_D
        return {C: p, D: 1.0 - p}

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Move:
        return C if rng.random() < self.move_probabilities(events, player)[C] else D


BOTS: tuple[type[Bot], ...] = (
    AlwaysCooperate,
    AlwaysDefect,
    TitForTat,
    Grim,
    WinStayLoseShift,
    Random,
    Alternator,
    Forgiving,
)
