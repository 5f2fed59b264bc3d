"""Games with a chat before the simultaneous move: an opener drawn once per game from its seed,
the next seat opening the next round, then ``messages_per_player`` messages each, in seat order
from the opener, then everyone's move. Shared by Trust-and-Split and Deal or No Deal."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

import numpy as np
from pydantic import Field

from detente.games.base import Game, GameConfig, GameInfo, Kind, MoveT, Phase


class ChatConfig(GameConfig):
    messages_per_player: int = Field(
        1,
        ge=0,
        description="Messages each player sends per round, alternating, the opener first "
        "(0 = no communication).",
    )


ChatConfigT = TypeVar("ChatConfigT", bound=ChatConfig)


class ChatGame(Game[ChatConfigT, MoveT]):
    """Draws the first opener in ``_setup``; ``_phases`` is the chat, then the move."""

    _first_opener: int

    @classmethod
    def describe(cls, config: GameConfig) -> GameInfo:
        """Two players, simultaneous moves; messages unless ``messages_per_player`` is 0."""
        assert isinstance(config, ChatConfig)
        return replace(super().describe(config), messages=config.messages_per_player > 0)

    def _setup(self, rng: np.random.Generator) -> None:
        self._first_opener = int(rng.integers(self.num_players))

    def opener_of(self, round_index: int) -> int:
        """Who sends the first message of a round: ``(first opener + r) mod N``."""
        return (self._first_opener + round_index) % self.num_players

    @property
    def opener(self) -> int:
        return self.opener_of(self.round)

    def _phases(self) -> list[Phase]:
        n = self.num_players
        talk = [
            Phase(Kind.MESSAGE, ((self.opener + turn) % n,))
            for turn in range(n * self.config.messages_per_player)
        ]
        return [*talk, Phase(Kind.MOVE, tuple(range(n)))]
