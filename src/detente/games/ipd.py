"""Iterated Prisoner's Dilemma (SPEC §1.1): simultaneous cooperate/defect each round."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from detente.games.base import (
    ALICE,
    BOB,
    Event,
    Game,
    GameConfig,
    GameInfo,
    IllegalAction,
    Kind,
    Phase,
    RoundOutcome,
)


class Move(StrEnum):
    COOPERATE = "C"
    DEFECT = "D"


class IPDConfig(GameConfig):
    """Payoffs R (both cooperate), S (sucker), T (temptation), P (both defect)."""

    reward: float = Field(3.0, description="R: payoff of mutual cooperation.")
    sucker: float = Field(0.0, description="S: payoff of cooperating against a defector.")
    temptation: float = Field(5.0, description="T: payoff of defecting against a cooperator.")
    punishment: float = Field(1.0, description="P: payoff of mutual defection.")

    @model_validator(mode="after")
    def _is_a_dilemma(self) -> IPDConfig:
        if not (self.temptation > self.reward > self.punishment > self.sucker):
            raise ValueError("IPD payoffs need T > R > P > S")
        return self


@dataclass(frozen=True)
class RoundStart(Event):
    """A new round begins (nothing private is dealt in the IPD)."""


@dataclass(frozen=True)
class RoundEnd(Event):
    """Both moves of the round, from the observer's point of view, and the observer's reward."""

    own_move: Move
    other_move: Move
    own_reward: float
    other_reward: float


class IPD(Game[IPDConfig, Move]):
    name: ClassVar[str] = "ipd"
    config_type: ClassVar[type[IPDConfig]] = IPDConfig
    reward_scale: ClassVar[float] = 5.0

    @classmethod
    def describe(cls, config: GameConfig) -> GameInfo:
        assert isinstance(config, IPDConfig)
        bounds = (config.sucker, config.temptation)
        return GameInfo(
            2, True, bounds, cls.horizon_cap(config), False, config.reward, config.punishment
        )

    def payoff(self, own: Move, other: Move) -> float:
        c = self.config
        table = {
            (Move.COOPERATE, Move.COOPERATE): c.reward,
            (Move.COOPERATE, Move.DEFECT): c.sucker,
            (Move.DEFECT, Move.COOPERATE): c.temptation,
            (Move.DEFECT, Move.DEFECT): c.punishment,
        }
        return table[(own, other)]

    def _deal(self, rng: np.random.Generator) -> tuple[Event, Event]:
        return RoundStart(self.round), RoundStart(self.round)

    def _phases(self) -> list[Phase]:
        return [Phase(Kind.MOVE, (ALICE, BOB))]

    def _validate_move(self, player: int, move: Move) -> None:
        if not isinstance(move, Move):
            raise IllegalAction(f"IPD move must be a Move, got {move!r}")

    def _resolve(self, moves: tuple[Move, Move]) -> RoundOutcome:
        a, b = moves
        rewards = (self.payoff(a, b), self.payoff(b, a))
        info = {
            "moves": [a.value, b.value],
            "cooperated": [a is Move.COOPERATE, b is Move.COOPERATE],
        }
        events = (
            RoundEnd(self.round, a, b, rewards[0], rewards[1]),
            RoundEnd(self.round, b, a, rewards[1], rewards[0]),
        )
        return RoundOutcome(rewards, info, events)
