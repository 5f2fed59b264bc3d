"""The token-level REINFORCE loss of SPEC §2, as pure torch functions.

Over the action tokens (mask m = 1; prompt and other-agent tokens have m = 0), with N the number
of action tokens of the whole iteration batch:

    L = −(1/N) Σ m · C · ρ̄ · log π_θ(token)                    (policy gradient)
        + κ · (1/N) Σ m · ρ̄ · k3,   k3 = exp(d) − 1 − d,  d = log π_base − log π_θ
        − η · (1/N) Σ m · H(π_θ(· | context))                   (entropy bonus)

ρ̄ = min(π_θ / π_sampler, cap) is detached: it corrects for a different sampling engine and is 1
when the same engine samples and trains. The k3 term is weighted by ρ̄ too, as the authors do:
k3 at tokens drawn from π_sampler estimates KL(π_θ ‖ π_base) only after reweighting to π_θ (the
same value on-policy, where ρ̄ = 1). Gradients flow through log π_θ in the PG and k3 terms and
through the entropy H.

Both log-ratios are clamped above at ``LOG_RATIO_MAX`` = 20 before ``exp`` (e^20 ≈ 4.9e8), so no
statistic or loss overflows to inf: π_θ / π_sampler is computed as exp(min(log π_θ − log
π_sampler, 20)), which leaves ρ̄ unchanged for any cap below e^20 and only bounds the reported
``mean_ratio``; k3 uses min(d, 20), so a token whose π_θ is more than e^20 below π_base gets a
constant k3 (no KL gradient) instead of an overflow. Negative log-ratios need no bound (exp
underflows to 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG_RATIO_MAX = 20.0  # upper clamp of a log-ratio before exp (see the module docstring)


@dataclass(frozen=True)
class LossTerms:
    """The loss to back-propagate and detached statistics of one (micro-)batch.

    Every statistic is a sum over the action tokens divided by N, so with a shared ``normaliser``
    the values of the micro-batches of an iteration add up to the iteration's value.

    Attributes:
        total: the loss L (carries the gradient).
        pg: the policy-gradient term −(1/N) Σ m C ρ̄ log π_θ.
        kl: the k3 estimate (1/N) Σ m ρ̄ k3 of KL(π_θ ‖ π_base), before the coefficient κ.
        entropy: the mean entropy (1/N) Σ m H, before the coefficient η.
        mean_ratio: (1/N) Σ m π_θ/π_sampler (uncapped; log-ratio clamped at LOG_RATIO_MAX).
        clip_fraction: (1/N) Σ m 1[π_θ/π_sampler > cap].
    """

    total: torch.Tensor
    pg: float
    kl: float
    entropy: float
    mean_ratio: float
    clip_fraction: float


def token_loss(
    logp: torch.Tensor,
    sampler_logp: torch.Tensor,
    base_logp: torch.Tensor,
    credits: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    entropy: torch.Tensor,
    entropy_coef: float,
    ratio_cap: float = 2.0,
    normaliser: float | None = None,
) -> LossTerms:
    """The SPEC §2 loss over [B, L] token tensors (see the module docstring for the formula).

    Args:
        logp: log π_θ(token), with gradient.
        sampler_logp: log-prob of the token under the engine that sampled it.
        base_logp: log π_base(token) (adapter disabled); with ``kl_coef`` 0 any finite values
            do (the k3 statistic is still reported).
        credits: the credit of the round each token belongs to.
        mask: 1 (or True) for action tokens, 0 elsewhere; values off the mask are ignored.
        kl_coef: κ.
        entropy: per-position entropy H of π_θ, with gradient.
        entropy_coef: η.
        ratio_cap: the cap of ρ̄ (SPEC: 2).
        normaliser: N; pass the number of action tokens of the whole iteration batch when
            accumulating gradients over micro-batches. Default: the number of action tokens in
            ``mask`` (at least 1, so an empty mask gives a zero loss).
    """
    for name, tensor in [
        ("sampler_logp", sampler_logp),
        ("base_logp", base_logp),
        ("credits", credits),
        ("mask", mask),
        ("entropy", entropy),
    ]:
        if tensor.shape != logp.shape:
            raise ValueError(
                f"{name} shape {tuple(tensor.shape)} != logp shape {tuple(logp.shape)}"
            )
    m = mask.to(torch.bool)
    w = m.to(logp.dtype)
    if normaliser is None:
        n = w.sum().clamp_min(1.0)
    elif normaliser > 0:
        n = torch.as_tensor(normaliser, dtype=logp.dtype)
    else:
        raise ValueError(f"normaliser must be positive, got {normaliser}")

    with torch.no_grad():
        ratio = torch.exp(torch.where(m, logp - sampler_logp, 0.0).clamp(max=LOG_RATIO_MAX))
        rho = ratio.clamp(max=ratio_cap)
        credit = torch.where(m, credits.to(logp.dtype), 0.0)
    d = torch.where(m, base_logp - logp, 0.0).clamp(max=LOG_RATIO_MAX)
    k3 = torch.exp(d) - 1.0 - d
    ent = torch.where(m, entropy, 0.0)

    pg = -(credit * rho * logp * w).sum() / n
    kl = (rho * k3 * w).sum() / n
    mean_entropy = ent.sum() / n
    total = pg + kl_coef * kl - entropy_coef * mean_entropy
    return LossTerms(
        total=total,
        pg=pg.item(),
        kl=kl.item(),
        entropy=mean_entropy.item(),
        mean_ratio=((ratio * w).sum() / n).item(),
        clip_fraction=(((ratio > ratio_cap) & m).sum() / n).item(),
    )


def token_logprobs_and_entropy(
    logits: torch.Tensor, targets: torch.Tensor, allowed: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """log π(target) and the entropy H = −Σ_v π_v log π_v from logits [B, L, V], targets [B, L].

    One log-softmax over the vocabulary (in at least float32, so bf16/fp16 logits keep their
    precision); both outputs are [B, L] and carry the gradient. With ``allowed`` [B, L, V]
    (bool), π is restricted to the allowed tokens: π_v = exp(z_v) / Σ_{u allowed} exp(z_u).
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logits = logits.to(dtype)
    if allowed is not None:
        logits = logits.masked_fill(~allowed, -math.inf)
    logprobs = torch.log_softmax(logits, dim=-1)
    target_logp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    # 0 · log 0 = 0 at masked tokens, written so that no NaN reaches the gradient either
    finite = logprobs if allowed is None else logprobs.masked_fill(~allowed, 0.0)
    return target_logp, -(logprobs.exp() * finite).sum(-1)
