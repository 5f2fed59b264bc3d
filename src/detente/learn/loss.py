"""The token-level losses of SPEC §2, as pure torch functions: REINFORCE and PPO-clipped.

``train.loss`` (:class:`LossType`) chooses between them; both share the regularisers and the
off-engine weight ρ̄ below.

REINFORCE (:func:`token_loss`, ``reinforce``, one optimizer step per iteration).

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

PPO-clipped (:func:`ppo_token_loss`, ``ppo``; Schulman et al. 2017, "Proximal Policy Optimization
Algorithms"; with Advantage Alignment credits this is Proximal Advantage Alignment, Duque et al.,
"Advantage Alignment Algorithms", ICLR 2025). The trainer takes ``ppo_epochs`` optimizer steps
over the same iteration batch, so the current π_θ drifts from π_old, the trainer's own policy
before the iteration's first step (scored once, without gradient, by the same scoring path as
training — not the sampler's log-probs, which may come from another engine):

    r = π_θ / π_old,   ρ̄ = min(π_old / π_sampler, cap)   (detached)
    L = −(1/N) Σ m · ρ̄ · min(r · C, clip(r, 1 − ε, 1 + ε) · C)     (clipped surrogate)
        + κ · (1/N) Σ m · ρ̄ · k3  − η · (1/N) Σ m · H              (as above)

ρ̄ is the off-engine correction of REINFORCE evaluated at π_old, constant over the epochs (1 when
the same engine samples and trains); r carries the gradient. For C > 0 the surrogate stops
pushing once r > 1 + ε, for C < 0 once r < 1 − ε. At θ = θ_old (the first epoch) r = 1, the
two branches of the min agree, and ∇L = −(1/N) Σ m ρ̄ C ∇log π_θ + …: the REINFORCE gradient of
the same batch. The k3 term is REINFORCE's, weighted by ρ̄ but not by r (GRPO, too, leaves its
k3 unweighted by r): a penalty towards π_base at the iteration's tokens. log r is clamped above at
``LOG_RATIO_MAX`` before exp like the other log-ratios (a token past it gets no surrogate
gradient; for C > 0 the clip has already stopped it).

Diagnostics of the update, as CleanRL's ``ppo.py`` logs them: ``approx_kl`` = (1/N) Σ m
((r − 1) − log r), the k3 estimate of KL(π_old ‖ π_θ) at tokens drawn from π_old (0 at
θ = θ_old), and ``ppo_clip_fraction`` = (1/N) Σ m 1[|r − 1| > ε], the share of tokens outside the
trust region (whether or not the min picks the clipped branch there).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from detente.learn.variants import LossType

__all__ = [
    "LOG_RATIO_MAX", "LossTerms", "LossType", "ppo_token_loss", "token_logprobs_and_entropy",
    "token_loss",
]

LOG_RATIO_MAX = 20.0  # upper clamp of a log-ratio before exp (see the module docstring)


@dataclass(frozen=True)
class LossTerms:
    """The loss to back-propagate and detached statistics of one (micro-)batch.

    Every statistic is a sum over the action tokens divided by N, so with a shared ``normaliser``
    the values of the micro-batches of an iteration add up to the iteration's value.

    Attributes:
        total: the loss L (carries the gradient).
        pg: the policy-gradient term −(1/N) Σ m C ρ̄ log π_θ; with PPO the clipped surrogate
            −(1/N) Σ m ρ̄ min(r C, clip(r) C) (−(1/N) Σ m ρ̄ C at θ = θ_old: another value than
            REINFORCE's, the same gradient).
        kl: the k3 estimate (1/N) Σ m ρ̄ k3 of KL(π_θ ‖ π_base), before the coefficient κ.
        entropy: the mean entropy (1/N) Σ m H, before the coefficient η.
        mean_ratio: (1/N) Σ m π_θ/π_sampler (uncapped; log-ratio clamped at LOG_RATIO_MAX);
            with PPO π_old/π_sampler.
        clip_fraction: (1/N) Σ m 1[π_θ/π_sampler > cap] (with PPO π_old/π_sampler): the share
            of tokens whose off-engine weight ρ̄ is capped.
        approx_kl: PPO only (else None): (1/N) Σ m ((r − 1) − log r), r = π_θ/π_old.
        ppo_clip_fraction: PPO only (else None): (1/N) Σ m 1[|r − 1| > ε].
    """

    total: torch.Tensor
    pg: float
    kl: float
    entropy: float
    mean_ratio: float
    clip_fraction: float
    approx_kl: float | None = None
    ppo_clip_fraction: float | None = None


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
    t = _tokens(
        logp, logp, sampler_logp, credits, mask, ratio_cap, normaliser,
        base_logp=base_logp, entropy=entropy,
    )
    pg = -(t.credit * t.rho * logp * t.w).sum() / t.n
    return _terms(pg, logp, base_logp, entropy, kl_coef, entropy_coef, t)


def ppo_token_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    sampler_logp: torch.Tensor,
    base_logp: torch.Tensor,
    credits: torch.Tensor,
    mask: torch.Tensor,
    entropy: torch.Tensor,
    *,
    clip_epsilon: float,
    kl_coef: float = 0.0,
    entropy_coef: float = 0.0,
    ratio_cap: float = 2.0,
    normaliser: float | None = None,
) -> LossTerms:
    """The PPO-clipped loss over token tensors of one shape (see the module docstring).

    Args:
        logp: log π_θ(token), with gradient.
        old_logp: log π_old(token): the trainer's policy before the iteration's first optimizer
            step, scored like ``logp``; treated as a constant.
        clip_epsilon: ε of clip(r, 1 − ε, 1 + ε), 0 < ε < 1.
        sampler_logp, base_logp, credits, mask, entropy, kl_coef, entropy_coef, ratio_cap,
            normaliser: as in :func:`token_loss`, but ρ̄ = min(π_old / π_sampler, cap).
    """
    if not 0 < clip_epsilon < 1:
        raise ValueError(f"clip_epsilon must be in (0, 1), got {clip_epsilon}")
    old_logp = old_logp.detach()
    t = _tokens(
        logp, old_logp, sampler_logp, credits, mask, ratio_cap, normaliser,
        old_logp=old_logp, base_logp=base_logp, entropy=entropy,
    )
    log_r = torch.where(t.m, logp - old_logp, 0.0).clamp(max=LOG_RATIO_MAX)
    r = torch.exp(log_r)
    clipped = r.clamp(1.0 - clip_epsilon, 1.0 + clip_epsilon)
    surrogate = torch.minimum(r * t.credit, clipped * t.credit)
    pg = -(t.rho * surrogate * t.w).sum() / t.n
    terms = _terms(pg, logp, base_logp, entropy, kl_coef, entropy_coef, t)
    with torch.no_grad():
        approx_kl = (((r - 1.0) - log_r) * t.w).sum() / t.n
        outside = (((r - 1.0).abs() > clip_epsilon) & t.m).sum() / t.n
    return dataclasses.replace(terms, approx_kl=approx_kl.item(), ppo_clip_fraction=outside.item())


@dataclass(frozen=True)
class _Tokens:
    """What both losses derive alike from a (micro-)batch's inputs (all detached)."""

    m: torch.Tensor  # bool action-token mask
    w: torch.Tensor  # m as logp's dtype
    n: torch.Tensor  # the normaliser N
    ratio: torch.Tensor  # π_behaviour / π_sampler, its log clamped at LOG_RATIO_MAX (1 off m)
    rho: torch.Tensor  # ρ̄ = min(ratio, cap)
    capped: torch.Tensor  # m & (ratio > cap)
    credit: torch.Tensor  # C on m, 0 elsewhere


def _tokens(
    logp: torch.Tensor,
    behaviour_logp: torch.Tensor,
    sampler_logp: torch.Tensor,
    credits: torch.Tensor,
    mask: torch.Tensor,
    ratio_cap: float,
    normaliser: float | None,
    **others: torch.Tensor,
) -> _Tokens:
    """Checks that every tensor has the shape of ``logp`` (``others`` are only checked); ρ̄ of
    π_behaviour (π_θ for REINFORCE, π_old for PPO); N defaults to the action tokens of ``mask``
    (at least 1, so an empty mask gives a zero loss)."""
    checked = {"sampler_logp": sampler_logp, **others, "credits": credits, "mask": mask}
    for name, tensor in checked.items():
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
        log_ratio = torch.where(m, behaviour_logp - sampler_logp, 0.0)
        ratio = torch.exp(log_ratio.clamp(max=LOG_RATIO_MAX))
        rho = ratio.clamp(max=ratio_cap)
        credit = torch.where(m, credits.to(logp.dtype), 0.0)
    return _Tokens(m, w, n, ratio, rho, (ratio > ratio_cap) & m, credit)


def _terms(
    pg: torch.Tensor,
    logp: torch.Tensor,
    base_logp: torch.Tensor,
    entropy: torch.Tensor,
    kl_coef: float,
    entropy_coef: float,
    t: _Tokens,
) -> LossTerms:
    """L = pg + κ (1/N) Σ m ρ̄ k3 − η (1/N) Σ m H, and the statistics of the off-engine ratio."""
    d = torch.where(t.m, base_logp - logp, 0.0).clamp(max=LOG_RATIO_MAX)
    k3 = torch.exp(d) - 1.0 - d
    ent = torch.where(t.m, entropy, 0.0)
    kl = (t.rho * k3 * t.w).sum() / t.n
    mean_entropy = ent.sum() / t.n
    total = pg + kl_coef * kl - entropy_coef * mean_entropy
    return LossTerms(
        total=total,
        pg=pg.item(),
        kl=kl.item(),
        entropy=mean_entropy.item(),
        mean_ratio=((t.ratio * t.w).sum() / t.n).item(),
        clip_fraction=(t.capped.sum() / t.n).item(),
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
