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


def pairwise(ipd_bot: type[ipd_bots.IPDBot]) -> type[Pairwise]:
    """The N-player bot of the same name that plays ``ipd_bot`` toward each co-player."""
    doc = (ipd_bot.__doc__ or ipd_bot.bot_name).strip()
    return type(
        ipd_bot.__name__,
        (Pairwise,),
        {
            "bot_name": ipd_bot.bot_name,
            "ipd_bot": ipd_bot,
            "__doc__": f"Toward each co-player, independently: {doc}",
            "__module__": __name__,
        },
    )


class GroupTitForTat(MultiIPDBot):
    """Cooperate with everyone first; then defect toward everyone if anyone defected toward me
    in the last round, else cooperate with everyone."""

    bot_name = "group-tit-for-tat"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Addressed:
        seats = co_players(events)
        last = [e for e in events if isinstance(e, RoundEnd)][-1:]
        move = D if last and D in last[0].other_moves else C
        return Addressed([move] * len(seats), seats)


BOTS: tuple[type[Bot], ...] = (*map(pairwise, ipd_bots.BOTS), GroupTitForTat)
