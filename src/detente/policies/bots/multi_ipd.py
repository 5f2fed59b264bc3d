"""N-player IPD bots: every IPD bot played toward each co-player, and group tit-for-tat.

A pairwise bot sees its game with each co-player as an IPD of its own (:func:`pair_history`:
its move toward that co-player, the co-player's move toward it, and their pairwise rewards) and
plays the IPD bot of the same name in each. A stochastic IPD bot's draws are independent across
co-players (one draw each, in seat order), so its distribution over the joint move is the
product of its pairwise distributions. With two players every pairwise bot
plays exactly as its IPD bot (same draws for the same seed).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from detente.games import ipd
from detente.games.base import Event
from detente.games.ipd import Move
from detente.games.multi_ipd import Addressed, MultiIPD, RoundEnd, RoundStart, toward
from detente.policies.bots import ipd as ipd_bots
from detente.policies.bots.base import Bot

C, D = Move.COOPERATE, Move.DEFECT


def co_players(events: Sequence[Event]) -> tuple[int, ...]:
    """The seats this seat moves toward (from its latest round start)."""
    return next(e.co_players for e in reversed(events) if isinstance(e, RoundStart))


def pair_history(events: Sequence[Event], co_player: int) -> list[ipd.RoundEnd]:
    """The observer's past rounds with ``co_player``, as the IPD's round ends."""
    return [
        ipd.RoundEnd(
            e.round,
            toward(e.moves, e.player, co_player),
            toward(e.moves, co_player, e.player),
            toward(e.pair_rewards, e.player, co_player),
            toward(e.pair_rewards, co_player, e.player),
        )
        for e in events
        if isinstance(e, RoundEnd)
    ]


class MultiIPDBot(Bot):
    game: ClassVar[str] = MultiIPD.name


class Pairwise(MultiIPDBot):
    """Plays the IPD bot ``ipd_bot`` in the game with each co-player."""

    ipd_bot: ClassVar[type[ipd_bots.IPDBot]]

    def __init__(self) -> None:
        super().__init__()
        self.pair_bot = self.ipd_bot()

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Addressed:
        seats = co_players(events)
        moves = [self.pair_bot.decide(pair_history(events, j), player, rng) for j in seats]
        return Addressed(moves, seats)

    def move_probabilities(
        self, events: Sequence[Event], player: int
    ) -> dict[Addressed, float] | None:
        seats = co_players(events)
        pairs = [self.pair_bot.move_probabilities(pair_history(events, j), player) for j in seats]
        if any(p is None for p in pairs):
            return None
        return {
            Addressed(moves, seats): math.prod(p[m] for p, m in zip(pairs, moves, strict=True))
            for moves in itertools.product(list(Move), repeat=len(seats))
        }


class AlwaysCooperate(Pairwise):
    bot_name, ipd_bot = "always-cooperate", ipd_bots.AlwaysCooperate


class AlwaysDefect(Pairwise):
    bot_name, ipd_bot = "always-defect", ipd_bots.AlwaysDefect


class TitForTat(Pairwise):
    """Toward each co-player: cooperate first, then copy its last move toward me."""

    bot_name, ipd_bot = "tit-for-tat", ipd_bots.TitForTat


class Grim(Pairwise):
    """Toward each co-player: cooperate until it defects toward me once, then defect."""

    bot_name, ipd_bot = "grim", ipd_bots.Grim


class WinStayLoseShift(Pairwise):
    """Toward each co-player: Pavlov on that pair's last round."""

    bot_name, ipd_bot = "wsls", ipd_bots.WinStayLoseShift


class Random(Pairwise):
    """Toward each co-player: C or D with probability 1/2 each, independently."""

    bot_name, ipd_bot = "random", ipd_bots.Random


class Alternator(Pairwise):
    bot_name, ipd_bot = "alternator", ipd_bots.Alternator


class Forgiving(Pairwise):
    """Toward each co-player, independently: the IPD's stochastic generous tit-for-tat
    (P(C) 0.95 first and after that co-player cooperated toward me, 0.6 after it defected)."""

    bot_name, ipd_bot = "forgiving", ipd_bots.Forgiving


class GroupTitForTat(MultiIPDBot):
    """Cooperate with everyone first; then defect toward everyone if anyone defected toward me
    in the last round, else cooperate with everyone."""

    bot_name = "group-tit-for-tat"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Addressed:
        seats = co_players(events)
        last = [e for e in events if isinstance(e, RoundEnd)][-1:]
        move = D if last and D in last[0].other_moves else C
        return Addressed([move] * len(seats), seats)


BOTS: tuple[type[Bot], ...] = (
    AlwaysCooperate,
    AlwaysDefect,
    TitForTat,
    Grim,
    WinStayLoseShift,
    Random,
    Alternator,
    Forgiving,
    GroupTitForTat,
)
