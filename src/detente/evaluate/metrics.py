"""Behaviour measures per game, computed from records for chosen seats.

Each measure averages over the given (game, player) seats' decisions; a measure with no
decision to average over is NaN (e.g. P(C | other defected) against a pure cooperator).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from detente.games.registry import game_entry
from detente.rollout.records import GameRecord, Turn

Seats = Sequence[tuple[GameRecord, int]]
Measure = Callable[[Seats], dict[str, float]]


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def game_measures(game: str, seats: Seats) -> dict[str, float]:
    """The game's behaviour measures over ``seats`` (its registration's ``measures``; empty
    when it has none)."""
    fn = game_entry(game).measure_fn()
    return fn(seats) if fn else {}


def reward_measures(seats: Seats) -> dict[str, float]:
    """Mean reward per round of the seats, and collective (all players') reward per round."""
    own = [r / rec.num_rounds for rec, p in seats for r in [sum(rec.seat_rewards(p))]]
    collective = [sum(sum(r) for r in rec.rewards) / rec.num_rounds for rec, _ in seats]
    return {"reward": _mean(own), "collective_reward": _mean(collective)}


def ipd_measures(seats: Seats) -> dict[str, float]:
    """Cooperation rate, P(C | other's previous move C), P(C | other's previous move D)."""
    moves, after_c, after_d = [], [], []
    for record, p in seats:
        history = [info["moves"] for info in record.infos]
        for t, pair in enumerate(history):
            cooperated = pair[p] == "C"
            moves.append(cooperated)
            if t > 0:
                (after_c if history[t - 1][1 - p] == "C" else after_d).append(cooperated)
    return {
        "coop_rate": _mean(moves),
        "p_coop_after_c": _mean(after_c),
        "p_coop_after_d": _mean(after_d),
    }


def hand_report(record: GameRecord, turn: Turn, player: int) -> tuple[str, str] | None:
    """(hand reported, hand held) of a Trust-and-Split message that reports its sender's own
    hand; None for a move or a message that reports none."""
    from detente.protocol.trust_split import claimed_hand

    hand = claimed_hand(str(turn.action)) if turn.kind == "message" else None
    return None if hand is None else (hand.value, record.infos[turn.round]["hands"][player])


def hand_note(record: GameRecord, turn: Turn, player: int) -> str:
    """Trust-and-Split's note on a message: the hand it reports, checked against the hand held."""
    report = hand_report(record, turn, player)
    if report is None:
        return ""
    said, held = report
    return f"reports {said}: " + ("true" if said == held else f"false, holds {held}")


def trust_split_measures(seats: Seats) -> dict[str, float]:
    """Coins claimed with the upper and with the lower hand; honesty of hand reports (share of
    messages naming a hand that name the sender's true hand); efficiency = collective reward /
    (coins × high value), the most a round can give."""
    upper, lower, honest, efficiency = [], [], [], []
    for record, p in seats:
        for info in record.infos:
            (upper if info["upper"] == p else lower).append(info["claims"][p])
        for turn in record.seats[p].turns:
            report = hand_report(record, turn, p)
            if report is not None:
                honest.append(report[0] == report[1])
        for info in record.infos:
            efficiency.append(sum(info["rewards"]) / (info["coins"] * max(info["values"])))
    return {
        "claim_upper": _mean(upper),
        "claim_lower": _mean(lower),
        "honesty": _mean(honest),
        "efficiency": _mean(efficiency),
    }


def split_measures(seats: Seats) -> dict[str, float]:
    """Efficiency = Σ collective reward / Σ the most the values allow (ratio of sums)."""
    collective = sum(info["collective"] for record, _ in seats for info in record.infos)
    best = sum(info["max_collective"] for record, _ in seats for info in record.infos)
    return {"efficiency": collective / best if best else math.nan}


def dond_measures(seats: Seats) -> dict[str, float]:
    """Share of rounds that ended in a deal."""
    return {
        "agreement_rate": _mean([info["agreed"] for record, _ in seats for info in record.infos])
    }


def multi_ipd_measures(seats: Seats) -> dict[str, float]:
    """Cooperation rate: the share of the seat's moves (one toward each co-player) that are C."""
    return {
        "coop_rate": _mean([info["cooperated"][p] for record, p in seats for info in record.infos])
    }


def public_goods_measures(seats: Seats) -> dict[str, float]:
    """Contribution rate c_i / E per round, and free riding: the share of rounds giving 0."""
    given = [
        (info["contributions"][p], info["endowment"])
        for record, p in seats
        for info in record.infos
    ]
    return {
        "contribution_rate": _mean([c / e for c, e in given]),
        "free_ride_rate": _mean([c == 0 for c, _ in given]),
    }


def commons_measures(seats: Seats) -> dict[str, float]:
    """Sustainable rate: the share of rounds the seat asked at most its share of the regrowth,
    ⌊S/(2N)⌋ of stock S; collapse rate: the share of the seats' games that ended in a collapse."""
    sustainable = [
        info["requests"][p] <= info["stock"] // (2 * record.num_players)
        for record, p in seats
        for info in record.infos
    ]
    collapsed = [bool(record.infos) and record.infos[-1]["collapsed"] for record, _ in seats]
    return {"sustainable_rate": _mean(sustainable), "collapse_rate": _mean(collapsed)}
