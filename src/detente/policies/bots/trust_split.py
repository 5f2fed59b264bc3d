"""Trust-and-Split bots: honest, greedy, liar, tit-for-tat, sucker.

Every bot states a hand in each of its messages ("My hand is rock."), readable by
:func:`claimed_hand`. A bot judges who wins from its own hand and the hand the other named in its
messages of the current round (proposals come after all messages, so both seats have read the
other's messages before claiming).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from detente.games.base import Event, MessageEvent
from detente.games.trust_split import Hand, RoundEnd, RoundStart, TrustSplit, beater, beats
from detente.policies.bots.base import Bot
from detente.protocol.trust_split import claimed_hand


def _round_start(events: Sequence[Event]) -> RoundStart:
    return next(e for e in reversed(events) if isinstance(e, RoundStart))


def _other_messages(events: Sequence[Event], round_index: int) -> list[str]:
    """The other's messages of a round, oldest first (a seat observes only the other's)."""
    return [e.text for e in events if isinstance(e, MessageEvent) and e.round == round_index]


def _stated_hand(events: Sequence[Event]) -> Hand | None:
    """The single hand the other named this round; ``None`` if none or contradictory."""
    start = _round_start(events)
    named = {claimed_hand(text) for text in _other_messages(events, start.round)} - {None}
    return named.pop() if len(named) == 1 else None


def _honest_claim(events: Sequence[Event]) -> int:
    """Winner keeps all: ``Q`` if own hand beats the stated one, 0 if it loses, else ``⌊Q/2⌋``.

    "Else" covers a message naming no hand, contradictory hands, or the bot's own hand (impossible,
    since hands always differ): without usable information the bot asks for half.
    """
    start = _round_start(events)
    other = _stated_hand(events)
    if other is None or other is start.hand:
        return start.coins // 2
    return start.coins if beats(start.hand, other) else 0


class TrustSplitBot(Bot):
    """Default message: the bot's own hand, truthfully."""

    game: ClassVar[str] = TrustSplit.name

    def claim_hand(self, events: Sequence[Event]) -> Hand:
        """The hand this bot says it holds this round."""
        return _round_start(events).hand

    def message(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> str:
        return f"My hand is {self.claim_hand(events)}."


class Honest(TrustSplitBot):
    """Reveals its hand; keeps every coin when it wins, none when it loses (half if unsure)."""

    bot_name = "honest"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        return _honest_claim(events)


class Greedy(TrustSplitBot):
    """Reveals its hand, keeps every coin."""

    bot_name = "greedy"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        return _round_start(events).coins


class Liar(TrustSplitBot):
    """Claims the winning hand and keeps every coin.

    As responder it names the hand that beats the one the other named in its first message of the
    round (its own hand when that message names none). As opener it cannot know which claim wins
    and names its own hand: against an honest responder the truth earns the most (52.5 per round
    on average, versus 38.3 and 28.3 for the two lies, which are caught whenever they name the
    responder's hand). Its later messages of a round repeat its first claim.
    """

    bot_name = "liar"

    def claim_hand(self, events: Sequence[Event]) -> Hand:
        start = _round_start(events)
        if start.opens:
            return start.hand
        first = _other_messages(events, start.round)[0]
        stated = claimed_hand(first)
        return start.hand if stated is None else beater(stated)

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        return _round_start(events).coins


class TitForTat(TrustSplitBot):
    """Honest, except right after a round in which the other kept coins with the lower hand:
    then it keeps every coin for one round (still revealing its hand truthfully)."""

    bot_name = "tit-for-tat"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        history = [e for e in events if isinstance(e, RoundEnd)]
        if history and not history[-1].other_upper and history[-1].other_claim > 0:
            return _round_start(events).coins
        return _honest_claim(events)


class Forgiving(TrustSplitBot):
    """Honest, and forgiving: right after a round in which the other kept coins with the lower
    hand it keeps every coin with probability ``P_RETALIATE`` (else it plays honestly again).
    The ``tiny`` warm start's reciprocal Trust-and-Split persona."""

    bot_name = "forgiving"
    P_RETALIATE = 0.4

    def move_probabilities(self, events: Sequence[Event], player: int) -> dict[int, float]:
        history = [e for e in events if isinstance(e, RoundEnd)]
        honest = _honest_claim(events)
        if history and not history[-1].other_upper and history[-1].other_claim > 0:
            keep_all = _round_start(events).coins
            if keep_all == honest:
                return {honest: 1.0}
            return {keep_all: self.P_RETALIATE, honest: 1.0 - self.P_RETALIATE}
        return {honest: 1.0}

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        probabilities = self.move_probabilities(events, player)
        claims = list(probabilities)
        return claims[0] if len(claims) == 1 else int(rng.choice(claims, p=list(probabilities.values())))


class Sucker(TrustSplitBot):
    """Reveals its hand, keeps nothing."""

    bot_name = "sucker"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        return 0


BOTS: tuple[type[Bot], ...] = (Honest, Greedy, Liar, TitForTat, Forgiving, Sucker)
