"""Public goods game: N players, each round everyone gives coins to a pot that is multiplied and
shared equally.

Each round every player receives an endowment ``E`` (10) and contributes, at the same time, an
integer ``c_i`` from 0 to ``E``. The pot ``Σ_j c_j`` is multiplied by ``r`` (``multiplier``, 1.6)
and shared equally among the ``N`` players (``players``, 4)::

    reward_i = E − c_i + r · Σ_j c_j / N

A dilemma when ``1 < r < N`` (checked): a coin given returns ``r/N < 1`` to its giver (so giving
nothing is dominant) but ``r > 1`` to the group (so everyone giving everything is best for all).
After the round everyone sees every contribution and every reward.

Optional chat (``messages_per_player``, default 0): before contributing, each player sends that
many messages, in seat order from the round's opener (drawn once per game from the seed, the
next seat opening the next round; :class:`detente.games.chat.ChatGame`). No other draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from detente.games.base import Event, GameConfig, GameInfo, IllegalAction, RoundOutcome
from detente.games.chat import ChatConfig, ChatGame


class PublicGoodsConfig(ChatConfig):
    """Players, endowment, multiplier; chat off by default."""

    players: int = Field(4, ge=2, description="Number of players N.")
    endowment: int = Field(10, ge=1, description="Coins each player receives every round (E).")
    multiplier: float = Field(
        1.6, description="r: the pot is multiplied by r and shared equally (needs 1 < r < N)."
    )
    messages_per_player: int = Field(
        0,
        ge=0,
        description="Messages each player sends per round before contributing, in seat order "
        "from the round's opener (0 = no communication).",
    )

    @model_validator(mode="after")
    def _is_a_dilemma(self) -> PublicGoodsConfig:
        if not 1.0 < self.multiplier < self.players:
            raise ValueError(
                f"multiplier={self.multiplier} makes no dilemma with {self.players} players: "
                f"needs 1 < multiplier < players"
            )
        return self


@dataclass(frozen=True)
class RoundStart(Event):
    """A new round: the coins each player receives, and who opens the chat (``None``: no chat)."""

    endowment: int
    opener: int | None


@dataclass(frozen=True)
class RoundEnd(Event):
    """Everything public after a round: every contribution and reward in seat order, the
    observer's own, and each player's share of the multiplied pot."""

    own_contribution: int
    contributions: tuple[int, ...]
    own_reward: float
    rewards: tuple[float, ...]
    share: float


def public_goods_rewards(
    contributions: tuple[int, ...], endowment: int, multiplier: float
) -> tuple[float, ...]:
    """``reward_i = E − c_i + r · Σ_j c_j / N``."""
    share = multiplier * sum(contributions) / len(contributions)
    return tuple(endowment - c + share for c in contributions)


class PublicGoods(ChatGame[PublicGoodsConfig, int]):
    """Moves are contributions: the integer number of coins a player gives, ``0..E``."""

    name: ClassVar[str] = "public-goods"
    config_type: ClassVar[type[PublicGoodsConfig]] = PublicGoodsConfig
    # Everyone giving everything earns E·r = 16 a round at the defaults: one round is O(1).
    reward_scale: ClassVar[float] = 16.0

    @classmethod
    def describe(cls, config: GameConfig) -> GameInfo:
        """Cooperation: everyone gives everything (``E·r`` each); defection: nobody gives
        (``E``)."""
        assert isinstance(config, PublicGoodsConfig)
        return GameInfo(
            config.players,
            True,
            cls._reward_bounds(config),
            cls.horizon_cap(config),
            config.messages_per_player > 0,
            cooperation=config.endowment * config.multiplier,
            defection=float(config.endowment),
        )

    @classmethod
    def _reward_bounds(cls, config: GameConfig) -> tuple[float, float]:
        """Lowest: giving everything alone (``r·E/N``); highest: giving nothing while everyone
        else gives everything (``E + r·(N−1)·E/N``)."""
        assert isinstance(config, PublicGoodsConfig)
        e, r, n = config.endowment, config.multiplier, config.players
        return r * e / n, e + r * (n - 1) * e / n

    def _deal(self, rng: np.random.Generator) -> tuple[Event, ...]:
        opener = self.opener if self.config.messages_per_player else None
        start = RoundStart(self.round, self.config.endowment, opener)
        return (start,) * self.num_players

    def _validate_move(self, player: int, move: int) -> None:
        if isinstance(move, bool) or not isinstance(move, int):
            raise IllegalAction(f"a contribution must be an int, got {move!r}")
        if not 0 <= move <= self.config.endowment:
            raise IllegalAction(f"contribution {move} outside 0..{self.config.endowment}")

    def _resolve(self, moves: tuple[int, ...]) -> RoundOutcome:
        c = self.config
        contributions = tuple(moves)
        rewards = public_goods_rewards(contributions, c.endowment, c.multiplier)
        pot = sum(contributions)
        share = c.multiplier * pot / c.players
        info = {
            "contributions": list(contributions),
            "rewards": list(rewards),
            "pot": pot,
            "share": share,
            "contribution_rate": pot / (c.players * c.endowment),
            "endowment": c.endowment,
            "collective": math.fsum(rewards),
        }
        events = tuple(
            RoundEnd(self.round, contributions[p], contributions, rewards[p], rewards, share)
            for p in range(c.players)
        )
        return RoundOutcome(rewards, info, events)
