"""SPEC §3 calibration point: the learning pipeline of §2 on the smallest tit-for-tat-capable policy.

The policy has three logits θ = (first round, after the other cooperated, after it defected);
p(C | state) = sigmoid(θ_state), starting at 0.8 everywhere. Self-play IPD, 128 games × 10 rounds
per iteration, both seats sample from the policy and both seats' actions give gradients. Rewards
÷5, γ = 0.9, leave-one-out over each seat's games in the batch (every game its own seed), credits
β = 0.5, γ_a = 0.9, plain REINFORCE through ``token_loss`` (ρ̄ = 1, κ = η = 0), Adam.

Expected (SPEC §3): naive → defection, sum of rewards → always cooperate, Advantage Alignment →
tit-for-tat. The IPD is simulated directly here so that only the learning code is under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from detente.learn.advantages import discounted_returns, group_loo
from detente.learn.credit import CreditMethod, CreditOptions, compute_credit
from detente.learn.loss import token_loss

# PAYOFF[a_me, a_other] with action 1 = cooperate, 0 = defect: CC 3, CD 0, DC 5, DD 1.
PAYOFF = np.array([[1.0, 5.0], [0.0, 3.0]])
REWARD_SCALE = 5.0
FIRST, AFTER_C, AFTER_D = 0, 1, 2


@dataclass(frozen=True)
class Calibration:
    """Final state of a calibration run.

    p_coop: p(C) in the states (first round, after other C, after other D).
    coop_rate: fraction of cooperative moves in the last iteration's self-play games.
    reward_vs_alld: expected payoff per round (unscaled) against always-defect over the horizon.
    """

    p_coop: np.ndarray
    coop_rate: float
    reward_vs_alld: float


def run_calibration(
    method: CreditMethod,
    iterations: int,
    *,
    lr: float = 0.1,
    games: int = 128,
    rounds: int = 10,
    gamma: float = 0.9,
    beta: float = 0.5,
    gamma_a: float = 0.9,
    seed: int = 0,
) -> Calibration:
    """Train the three-logit policy in IPD self-play with the §2 pipeline and return its state."""
    rng = np.random.default_rng(seed)
    options = CreditOptions(method=method, gamma=gamma, beta=beta, gamma_a=gamma_a)
    theta = torch.full((3,), math.log(0.8 / 0.2), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([theta], lr=lr)
    group_ids = np.arange(games)
    seats = np.arange(2)
    coop_rate = float("nan")
    for _ in range(iterations):
        p = torch.sigmoid(theta).detach().numpy()
        states = np.empty((2, games, rounds), dtype=np.int64)
        actions = np.empty((2, games, rounds), dtype=np.int64)
        states[:, :, 0] = FIRST
        for t in range(rounds):
            if t > 0:
                states[:, :, t] = np.where(actions[::-1, :, t - 1] == 1, AFTER_C, AFTER_D)
            actions[:, :, t] = rng.random((2, games)) < p[states[:, :, t]]
        rewards = PAYOFF[actions, actions[::-1]] / REWARD_SCALE
        adv = np.stack([group_loo(discounted_returns(rewards[s], gamma), group_ids) for s in seats])
        credits = np.stack(
            [compute_credit(options, adv[s], adv[1 - s]) for s in seats]
        )

        logits = theta[torch.from_numpy(states)]
        acts = torch.from_numpy(actions).to(torch.float64)
        logp = acts * torch.nn.functional.logsigmoid(logits) + (1 - acts) * (
            torch.nn.functional.logsigmoid(-logits)
        )
        logp = logp.reshape(2 * games, rounds)  # every action is one "token"
        cred = torch.from_numpy(credits).reshape(2 * games, rounds)
        same = logp.detach()  # sampler = base = π_θ: ρ̄ = 1 and k3 = 0
        terms = token_loss(
            logp, same, same, cred, torch.ones_like(logp), 0.0, torch.zeros_like(logp), 0.0
        )
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        coop_rate = float(actions.mean())

    p_final = torch.sigmoid(theta).detach().numpy()
    reward_vs_alld = ((1 - p_final[FIRST]) + (rounds - 1) * (1 - p_final[AFTER_D])) / rounds
    return Calibration(p_final, coop_rate, float(reward_vs_alld))


def test_naive_learns_to_defect() -> None:
    result = run_calibration(CreditMethod.NAIVE, iterations=100)
    assert np.all(result.p_coop < 0.2), result
    assert result.coop_rate < 0.2, result


def test_sum_of_rewards_learns_to_always_cooperate() -> None:
    result = run_calibration(CreditMethod.SUM, iterations=100)
    assert np.all(result.p_coop > 0.8), result
    assert result.reward_vs_alld < 0.2, result


def test_advantage_alignment_learns_tit_for_tat() -> None:
    result = run_calibration(CreditMethod.ADALIGN, iterations=200)
    assert result.p_coop[AFTER_C] > 0.9, result
    assert result.p_coop[AFTER_D] < 0.2, result
    assert result.coop_rate > 0.6, result
    assert result.reward_vs_alld > 0.7, result


@pytest.mark.parametrize("seed", [1, 2])
def test_advantage_alignment_tit_for_tat_other_seeds(seed: int) -> None:
    result = run_calibration(CreditMethod.ADALIGN, iterations=200, seed=seed)
    assert result.p_coop[AFTER_C] > 0.9, result
    assert result.p_coop[AFTER_D] < 0.2, result
