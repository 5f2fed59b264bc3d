"""From played games to training data: per-round credits of learner seats, then token sequences.

An *agent row* is one seat of one game: its rewards [T], its co-player's rewards [T] and its group.
Before the returns, a learner's own rewards may be mixed with its co-player's
(``reward_weights``, :func:`mixed_rewards`): naive (1, 0), sum (1, 1), spite (0, −1), margin (1, −1).
Rows of the same seat position within a seed group form the leave-one-out group (so an opener is
compared with openers); when every seed group holds one game, ``group_loo`` pools each seat
position over the batch (Alice rows with Alice rows), never the two seats of one game.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detente.learn.advantages import discounted_returns, group_loo
from detente.learn.credit import CreditMethod, compute_credit
from detente.rollout.records import GameRecord


@dataclass(frozen=True)
class CreditSettings:
    method: CreditMethod
    gamma: float
    beta: float
    gamma_a: float
    include_current: bool
    ignore_groups: bool
    reward_scale: float
    leading_gamma: bool | None = None  # None: γ_a for k < t, none for k ≤ t (credit.py)
    reward_weights: tuple[float, float] = (1.0, 0.0)  # (w_self, w_other) of mixed_rewards


def mixed_rewards(
    own: npt.ArrayLike, other: npt.ArrayLike, weights: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """The reward a learner is trained on: r̃^i_t = w_self · r^i_t + w_other · r^{−i}_t.

    ``own`` and ``other`` are [rows, T] rewards of a seat and of its co-player in the same games;
    (1, 0) is the game's reward, (1, 1) the sum of both, (0, −1) spite (the co-player's loss),
    (1, −1) the margin over the co-player.
    """
    w_self, w_other = weights
    return w_self * np.asarray(own, dtype=np.float64) + w_other * np.asarray(other, dtype=np.float64)


@dataclass
class SeatCredit:
    """Credits per round of one learner seat of one game."""

    game_index: int
    player: int
    credits: npt.NDArray[np.float64]  # [num_rounds of that game]


def reward_matrix(
    records: Sequence[GameRecord], player_of_row: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Rewards [rows, T_max] (zero-padded) and mask [rows, T_max] for (game, player) rows."""
    t_max = max(records[g].num_rounds for g, _ in player_of_row)
    rewards = np.zeros((len(player_of_row), t_max))
    mask = np.zeros_like(rewards)
    for row, (g, p) in enumerate(player_of_row):
        n = records[g].num_rounds
        rewards[row, :n] = records[g].seat_rewards(p)
        mask[row, :n] = 1.0
    return rewards, mask


def seat_credits(records: Sequence[GameRecord], settings: CreditSettings) -> list[SeatCredit]:
    """Credits of every learner seat (``SeatRecord.learner``), SPEC §2.

    Returns G = discounted reward-to-go of r̃ / c, r̃ the learner's mixed reward (``mixed_rewards``;
    the co-player's own reward for its rows); A = leave-one-out within (group, seat position)
    for both the learner rows and their co-player rows (each by its own seat position; K = 1:
    over that position's rows in the batch); credit by ``settings.method``.
    """
    rows = [(g, p) for g, r in enumerate(records) for p in (0, 1) if r.seats[p].learner]
    if not rows:
        return []
    own_rewards, mask = reward_matrix(records, rows)
    other_rewards, _ = reward_matrix(records, [(g, 1 - p) for g, p in rows])
    learner_rewards = mixed_rewards(own_rewards, other_rewards, settings.reward_weights)
    groups = np.array([records[g].group for g, _ in rows])
    seats = np.array([p for _, p in rows])

    def advantages(rewards: np.ndarray, seat_of_row: np.ndarray) -> np.ndarray:
        returns = discounted_returns(rewards / settings.reward_scale, settings.gamma) * mask
        return group_loo(
            returns, groups, seat_of_row, mask=mask, ignore_groups=settings.ignore_groups
        )

    credits = compute_credit(
        settings.method,
        advantages(learner_rewards, seats),
        advantages(other_rewards, 1 - seats),
        settings.beta,
        settings.gamma_a,
        settings.include_current,
        mask,
        leading_gamma=settings.leading_gamma,
    )
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


def token_sequences(records: Sequence[GameRecord], credits: Sequence[SeatCredit]) -> list[TokenSequence]:
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
                raise ValueError(f"turn of {seat.agent} has {len(allowed)} allowed sets for {n_reply} tokens")
            seq.allowed += [None] * n_prompt + [None if a is None else tuple(a) for a in allowed]
        if seq.action_tokens:
            out.append(seq)
    return out
