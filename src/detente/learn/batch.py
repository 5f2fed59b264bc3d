"""From played games to training data: per-round credits of learner seats, then token sequences.

An *agent row* is one seat of one game: its rewards [T], its co-players' rewards and its group.
Before the returns, a learner's own rewards may be mixed with its co-players'
(``reward_weights``, :func:`mixed_rewards`): naive (1, 0), sum (1, 1), spite (0, −1), margin (1, −1).
Rows of the same seat position within a seed group form the leave-one-out group (so an opener is
compared with openers); when every seed group holds one game, ``group_loo`` pools each seat
position over the batch (Alice rows with Alice rows), never two seats of one game. Each
co-player's advantage is computed likewise, by its own seat position, then combined over the
co-players (``CreditOptions.co_players``: sum or mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detente.learn.advantages import discounted_returns, group_loo
from detente.learn.credit import CreditOptions, combine_co_players, compute_credit
from detente.rollout.records import GameRecord


def mixed_rewards(
    own: npt.ArrayLike, other: npt.ArrayLike, weights: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """The reward a learner is trained on: r̃^i_t = w_self · r^i_t + w_other · r^{−i}_t.

    ``own`` is [rows, T] rewards of a seat and ``other`` its co-players' rewards in the same games,
    combined (:func:`~detente.learn.credit.combine_co_players`); (1, 0) is the game's reward,
    (1, 1) the sum, (0, −1) spite (the co-players' loss), (1, −1) the margin over them.
    """
    w_self, w_other = weights
    return w_self * np.asarray(own, dtype=np.float64) + w_other * np.asarray(
        other, dtype=np.float64
    )


@dataclass
class SeatCredit:
    """Credits per round of one learner seat of one game."""

    game_index: int
    player: int
    credits: npt.NDArray[np.float64]  # [num_rounds of that game]


def reward_matrix(
    records: Sequence[GameRecord], player_of_row: Sequence[tuple[int, int]], t_max: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rewards [rows, t_max] (zero-padded) and mask [rows, t_max] for (game, player) rows."""
    rewards = np.zeros((len(player_of_row), t_max))
    mask = np.zeros_like(rewards)
    for row, (g, p) in enumerate(player_of_row):
        n = records[g].num_rounds
        rewards[row, :n] = records[g].seat_rewards(p)
        mask[row, :n] = 1.0
    return rewards, mask


def seat_credits(
    records: Sequence[GameRecord], options: CreditOptions, game_scale: float
) -> list[SeatCredit]:
    """Credits of every learner seat (``SeatRecord.learner``), SPEC §2.

    Returns G = discounted reward-to-go of r̃ / c (c = ``options.reward_scale``, else the game's
    ``game_scale``), r̃ the learner's mixed reward (``mixed_rewards``; each co-player's own
    reward for its rows); A = leave-one-out within (group, seat position) for the learner rows
    and for each of their co-players' rows (each by its own seat position; K = 1: over that
    position's rows in the batch); the co-players' advantages combined per learner row
    (sum or mean); credit by ``options.method``.
    """
    rows = [
        (g, p) for g, r in enumerate(records) for p in range(r.num_players) if r.seats[p].learner
    ]
    if not rows:
        return []
    # Each co-player seat once (with N > 2 it is the co-player of several learner rows; a
    # duplicate would count as its own peer in the leave-one-out).
    co_pairs = [(row, (g, j)) for row, (g, p) in enumerate(rows) for j in records[g].co_players(p)]
    co_seats = list(dict.fromkeys(seat for _, seat in co_pairs))  # first-seen order
    co_index = {seat: k for k, seat in enumerate(co_seats)}
    owner = np.array([row for row, _ in co_pairs])
    gather = np.array([co_index[seat] for _, seat in co_pairs])
    t_max = max(records[g].num_rounds for g, _ in rows)
    own_rewards, mask = reward_matrix(records, rows, t_max)
    co_rewards, co_mask = reward_matrix(records, co_seats, t_max)
    scale = options.reward_scale or game_scale

    def combined(per_co_seat: np.ndarray) -> np.ndarray:
        return combine_co_players(per_co_seat[gather], owner, len(rows), options.co_players)

    def advantages(rewards: np.ndarray, seats: list[tuple[int, int]], m: np.ndarray) -> np.ndarray:
        returns = discounted_returns(rewards / scale, options.gamma) * m
        groups = np.array([records[g].group for g, _ in seats])
        positions = np.array([p for _, p in seats])
        return group_loo(returns, groups, positions, mask=m, ignore_groups=options.ignore_groups)

    learner_rewards = mixed_rewards(own_rewards, combined(co_rewards), options.reward_weights)
    own_advantages = advantages(learner_rewards, rows, mask)
    co_advantages = advantages(co_rewards, co_seats, co_mask)
    credits = compute_credit(options, own_advantages, combined(co_advantages), mask)
    return [
        SeatCredit(g, p, credits[row, : records[g].num_rounds]) for row, (g, p) in enumerate(rows)
    ]


@dataclass
class TokenSequence:
    """One learner seat's whole token sequence with per-token training targets.

    ``action[k]`` is 1 where token k was sampled by the seat (its replies), 0 for prompt tokens;
    ``credit[k]`` and ``sampler_logp[k]`` are defined where ``action[k]`` is 1; ``allowed[k]`` is
    the set of token ids a constrained reply could take at k (None: the whole vocabulary).
    """

    tokens: list[int]
    action: list[int]
    credit: list[float]
    sampler_logp: list[float]
    allowed: list[tuple[int, ...] | None]

    @property
    def action_tokens(self) -> int:
        return sum(self.action)


def token_sequences(
    records: Sequence[GameRecord], credits: Sequence[SeatCredit]
) -> list[TokenSequence]:
    """Concatenate each learner seat's turns (prompt ids, then sampled ids) with its credits."""
    out = []
    for seat_credit in credits:
        seat = records[seat_credit.game_index].seats[seat_credit.player]
        seq = TokenSequence([], [], [], [], [])
        for turn in seat.turns:
            if len(turn.token_ids) != len(turn.logprobs):
                raise ValueError(f"turn of {seat.agent} has tokens without log-probs")
            n_prompt, n_reply = len(turn.prompt_ids), len(turn.token_ids)
            seq.tokens += turn.prompt_ids + turn.token_ids
            seq.action += [0] * n_prompt + [1] * n_reply
            seq.credit += [0.0] * n_prompt + [float(seat_credit.credits[turn.round])] * n_reply
            seq.sampler_logp += [0.0] * n_prompt + list(turn.logprobs)
            allowed = turn.allowed or [None] * n_reply
            if len(allowed) != n_reply:
                raise ValueError(
                    f"turn of {seat.agent} has {len(allowed)} allowed sets for {n_reply} tokens"
                )
            seq.allowed += [None] * n_prompt + [None if a is None else tuple(a) for a in allowed]
        if seq.action_tokens:
            out.append(seq)
    return out
