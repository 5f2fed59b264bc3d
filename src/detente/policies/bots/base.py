"""Scripted bots: decide from the structured events, answer through the text protocol."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from detente.games.base import Event, Kind
from detente.policies.base import Policy, Reply, Request


class Bot(Policy):
    """A scripted player of one game. Subclasses implement ``decide`` (and ``message`` if the
    game has messages). Randomness comes from the request's seed only."""

    game: ClassVar[str]
    bot_name: ClassVar[str]

    def __init__(self) -> None:
        self.name = f"bot:{self.bot_name}"

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        replies = []
        for request in requests:
            rng = np.random.default_rng(request.seed)
            distribution = None
            if request.kind is Kind.MESSAGE:
                action = self.message(request.events, request.player, rng)
            else:
                action = self.decide(request.events, request.player, rng)
                probabilities = self.move_probabilities(request.events, request.player)
                if probabilities is not None:
                    distribution = {}
                    for move, p in probabilities.items():
                        text = request.protocol.format(request.kind, move)
                        distribution[text] = distribution.get(text, 0.0) + p
            replies.append(
                Reply(request.protocol.format(request.kind, action), distribution=distribution)
            )
        return replies

    def move_probabilities(self, events: Sequence[Event], player: int) -> dict[Any, float] | None:
        """A stochastic bot's distribution over its next move (``decide`` draws from it);
        ``None`` for a deterministic bot."""
        return None

    @abstractmethod
    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> Any:
        """The move, given everything this seat has observed."""

    def message(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> str:
        """The chat message (games with communication). Default: a short neutral line."""
        return "Let's play."
