"""The trainer scores action tokens on the support the sampler drew them from."""

from __future__ import annotations

import torch

from detente.learn.scoring import sampling_support
from detente.lm.sampling import sampling_logprobs


def test_support_is_the_samplers_nucleus_within_the_allowed_tokens_plus_the_target():
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(64, 20, generator=generator)
    allowed = torch.rand(64, 20, generator=generator) < 0.6
    allowed[:, 0] = True
    targets = torch.randint(20, (64,), generator=generator)
    temperature, top_p = 0.7, 0.8
    sampler = sampling_logprobs(
        logits, torch.full((64,), temperature), torch.full((64,), top_p), allowed
    )
    expected = torch.isfinite(sampler)
    expected[torch.arange(64), targets] = True
    support = sampling_support(logits / temperature, targets, allowed, top_p)
    assert torch.equal(support, expected)
    assert (expected.sum(-1) < allowed.sum(-1)).any()  # the nucleus did cut somewhere


def test_without_top_p_the_support_is_the_allowed_set():
    logits, targets = torch.randn(3, 5), torch.zeros(3, dtype=torch.long)
    allowed = torch.ones(3, 5, dtype=torch.bool)
    assert sampling_support(logits, targets, None, 1.0) is None
    assert sampling_support(logits, targets, allowed, 1.0) is allowed
