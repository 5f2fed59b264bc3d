"""Trust-and-Split (SPEC §1.2): split coins whose value depends on a hidden rock/paper/scissors hand.

Each round both players are dealt different hands; the player whose hand beats the other's has
the *upper hand* and values each coin at ``high_value`` (10), the other at ``low_value`` (1). A
player sees only its own hand, so it learns its value only through the other's messages. After
the messages (the opener first, alternating, ``messages_per_player`` each) both claim at once how
many coins they keep; coins are shared with :func:`allocate`.

Draws (all from the seed, never from actions):

* the opener of round 0 is drawn once per game in ``_setup``; the opener alternates every round;
* default: each round's hands are one of the 6 ordered pairs of different hands, uniformly, from
  the round's generator ``default_rng([seed, r])``;
* ``alternating_hands``: round 0 as above; in round ``r > 0`` the previous round's winner gets a
  hand ``h`` drawn uniformly from the 3 hands (round ``r``'s generator) and the previous loser
  gets the hand that beats ``h``, so the previous winner always loses. The winner of round ``r``
  is then the round-0 loser for odd ``r`` and the round-0 winner for even ``r``.
"""

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
    GameConfig,
    IllegalAction,
    RoundOutcome,
    allocate,
)
from detente.games.chat import ChatConfig, ChatGame


class Hand(StrEnum):
    ROCK = "rock"
    PAPER = "paper"
    SCISSORS = "scissors"


BEATS: dict[Hand, Hand] = {
    Hand.ROCK: Hand.SCISSORS,
    Hand.SCISSORS: Hand.PAPER,
    Hand.PAPER: Hand.ROCK,
}  # hand -> the hand it beats
BEATEN_BY: dict[Hand, Hand] = {loser: winner for winner, loser in BEATS.items()}
HANDS: tuple[Hand, ...] = tuple(Hand)
HAND_PAIRS: tuple[tuple[Hand, Hand], ...] = tuple(
    (a, b) for a in HANDS for b in HANDS if a is not b
)  # the 6 ordered (Alice, Bob) pairs of different hands


def beats(hand: Hand, other: Hand) -> bool:
    """Whether ``hand`` has the upper hand over ``other`` (rock > scissors > paper > rock)."""
    return BEATS[hand] is other


def beater(hand: Hand) -> Hand:
    """The hand that beats ``hand``."""
    return BEATEN_BY[hand]


class TrustSplitConfig(ChatConfig):
    """Coins per round, per-coin values of the upper/lower hand, chat quota, hand variant."""

    coins: int = Field(10, ge=1, description="Coins to split each round (Q).")
    high_value: float = Field(10.0, gt=0.0, description="Per-coin value of the upper hand.")
    low_value: float = Field(1.0, ge=0.0, description="Per-coin value of the lower hand.")
    alternating_hands: bool = Field(
        False, description="Variant: the previous round's winner always loses the next round."
    )

    @model_validator(mode="after")
    def _upper_hand_is_worth_more(self) -> TrustSplitConfig:
        if not self.high_value > self.low_value:
            raise ValueError("Trust-and-Split needs high_value > low_value")
        return self


@dataclass(frozen=True)
class RoundStart(Event):
    """A new round: the observer's own hand, whether it opens the chat, the coins at stake."""

    hand: Hand
    opens: bool
    coins: int


@dataclass(frozen=True)
class RoundEnd(Event):
    """What the observer learns after a round: who had the upper hand, both claims, its reward."""

    own_hand: Hand
    own_upper: bool
    own_claim: int
    other_claim: int
    own_units: float
    own_reward: float

    @property
    def other_upper(self) -> bool:
        return not self.own_upper


class TrustSplit(ChatGame[TrustSplitConfig, int]):
    """Moves are claims: the integer number of coins a player keeps, ``0..coins``."""

    name: ClassVar[str] = "trust-split"
    config_type: ClassVar[type[TrustSplitConfig]] = TrustSplitConfig
    reward_scale: ClassVar[float] = 100.0

    _hands: tuple[Hand, Hand]

    @classmethod
    def _reward_bounds(cls, config: GameConfig) -> tuple[float, float]:
        assert isinstance(config, TrustSplitConfig)
        return 0.0, config.coins * config.high_value

    # ---- the current round ---------------------------------------------------------------------
    @property
    def hands(self) -> tuple[Hand, Hand]:
        """The hands of the current (last dealt) round, (Alice's, Bob's)."""
        return self._hands

    @property
    def upper(self) -> int:
        """The player with the upper hand in the current (last dealt) round."""
        return ALICE if beats(self._hands[ALICE], self._hands[BOB]) else BOB

    def value(self, player: int) -> float:
        """``player``'s per-coin value this round: high with the upper hand, else low."""
        c = self.config
        return c.high_value if player == self.upper else c.low_value

    # ---- hooks ---------------------------------------------------------------------------------
    def _deal(self, rng: np.random.Generator) -> tuple[Event, Event]:
        if self.config.alternating_hands and self.round > 0:
            previous_winner = self.upper
            hand = HANDS[int(rng.integers(len(HANDS)))]
            hands = [hand, hand]
            hands[1 - previous_winner] = beater(hand)
            self._hands = (hands[ALICE], hands[BOB])
        else:
            self._hands = HAND_PAIRS[int(rng.integers(len(HAND_PAIRS)))]
        opener, coins = self.opener, self.config.coins
        return (
            RoundStart(self.round, self._hands[ALICE], opener == ALICE, coins),
            RoundStart(self.round, self._hands[BOB], opener == BOB, coins),
        )

    def _validate_move(self, player: int, move: int) -> None:
        if isinstance(move, bool) or not isinstance(move, int):
            raise IllegalAction(f"a Trust-and-Split claim must be an int, got {move!r}")
        if not 0 <= move <= self.config.coins:
            raise IllegalAction(f"claim {move} outside 0..{self.config.coins}")

    def _resolve(self, moves: tuple[int, int]) -> RoundOutcome:
        """Units ``u = allocate(Q, a, b)``; reward of player ``i`` = ``u_i · v_i``."""
        claims = moves
        units = allocate(self.config.coins, claims[ALICE], claims[BOB])
        values = (self.value(ALICE), self.value(BOB))
        rewards = (units[ALICE] * values[ALICE], units[BOB] * values[BOB])
        upper = self.upper
        info = {
            "opener": self.opener,
            "coins": self.config.coins,
            "hands": [hand.value for hand in self._hands],
            "upper": upper,
            "values": list(values),
            "claims": list(claims),
            "units": list(units),
            "rewards": list(rewards),
        }
        events = tuple(
            RoundEnd(
                self.round,
                own_hand=self._hands[p],
                own_upper=upper == p,
                own_claim=claims[p],
                other_claim=claims[1 - p],
                own_units=units[p],
                own_reward=rewards[p],
            )
            for p in (ALICE, BOB)
        )
        return RoundOutcome(rewards, info, (events[ALICE], events[BOB]))
