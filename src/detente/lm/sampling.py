"""Next-token distributions (constraint, temperature, top-p) and per-request seeded draws.

A request's randomness is one stream of uniforms drawn from its own seeded generator, one
uniform per token it may sample (:func:`request_uniforms`, called once per request and
``generate``). Token ``t`` of a reply is the inverse CDF of its step-``t`` distribution at
uniform ``t`` (:func:`draw_tokens`, all rows at once), so a reply depends on its seed and its
distributions only, never on its batch mates.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sampling_logprobs(
    logits: Tensor, temperature: Tensor, top_p: Tensor, allowed: Tensor | None = None
) -> Tensor:
    """Log-probs of the distribution to sample from, per row of ``logits`` [B, V].

    In order: tokens outside ``allowed`` [B, V] (if given) are removed; rows with temperature 0
    become a point mass on their argmax; the others are divided by their temperature and
    softmaxed; then top-p keeps the smallest set of most likely tokens whose mass reaches p and
    renormalises. Removed tokens get -inf.
    """
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    greedy = temperature <= 0
    safe_t = torch.where(greedy, torch.ones_like(temperature), temperature).float()
    logp = torch.log_softmax(logits / safe_t[:, None], dim=-1)
    nucleus = (top_p < 1) & ~greedy
    if bool(nucleus.any()):
        logp = torch.where(nucleus[:, None], _top_p(logp, top_p), logp)
    if bool(greedy.any()):
        point = torch.full_like(logp, float("-inf"))
        point.scatter_(1, logits.argmax(dim=-1, keepdim=True), 0.0)
        logp = torch.where(greedy[:, None], point, logp)
    return logp


def nucleus(logp: Tensor, top_p: Tensor) -> Tensor:
    """The top-p nucleus of each row of ``logp`` [N, V] (log-probs), as a bool mask [N, V].

    With the tokens in order of decreasing probability π_(1) ≥ π_(2) ≥ …, token (k) is kept iff
    Σ_{j<k} π_(j) < p (the mass before it has not reached p yet); the most likely token is
    always kept. This is the smallest such prefix whose mass reaches p. The sampler and the
    trainer's scoring both call this, so they agree on the set.
    """
    sorted_logp, order = logp.sort(dim=-1, descending=True)
    probs = sorted_logp.exp()
    mass_before = probs.cumsum(dim=-1) - probs
    keep_sorted = mass_before < top_p[:, None].to(probs.dtype)
    keep_sorted[:, 0] = True
    return torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)


def _top_p(logp: Tensor, top_p: Tensor) -> Tensor:
    """Keep, per row, the :func:`nucleus` of mass ``top_p``; renormalise."""
    return torch.log_softmax(logp.masked_fill(~nucleus(logp, top_p), float("-inf")), dim=-1)


def request_uniforms(generator: torch.Generator, count: int) -> Tensor:
    """The ``count`` uniforms in [0, 1) (float64) that one request's draws consume, in order."""
    return torch.rand(count, generator=generator, dtype=torch.float64, device=generator.device)


def draw_tokens(logp: Tensor, uniforms: Tensor) -> Tensor:
    """One token per row of ``logp`` [B, V]: the inverse CDF (in vocabulary order) at
    ``uniforms`` [B]. A token of probability 0 is never drawn."""
    cdf = logp.exp().double().cumsum(dim=-1)
    total = cdf[:, -1]
    # Strictly below the total mass, so the first cdf entry above the target has mass > 0.
    target = torch.minimum(uniforms.to(cdf) * total, total.nextafter(torch.zeros_like(total)))
    return torch.searchsorted(cdf, target[:, None], right=True)[:, 0]
