"""The token-level loss: values against a loop, gradients against finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from detente.learn.loss import (
    LOG_RATIO_MAX,
    LossType,
    ppo_token_loss,
    token_logprobs_and_entropy,
    token_loss,
)

DT = torch.float64


def brute_loss(
    logp: np.ndarray,
    rho: np.ndarray,
    base_logp: np.ndarray,
    credits: np.ndarray,
    mask: np.ndarray,
    kl_coef: float,
    entropy: np.ndarray,
    entropy_coef: float,
    n: float,
) -> dict[str, float]:
    """L = −(1/N) Σ m C ρ̄ log π + κ (1/N) Σ m ρ̄ k3 − η (1/N) Σ m H, token by token."""
    pg = kl = ent = 0.0
    for idx in np.ndindex(logp.shape):
        if mask[idx]:
            d = base_logp[idx] - logp[idx]
            pg -= credits[idx] * rho[idx] * logp[idx] / n
            kl += rho[idx] * (math.exp(d) - 1.0 - d) / n
            ent += entropy[idx] / n
    return {"pg": pg, "kl": kl, "entropy": ent, "total": pg + kl_coef * kl - entropy_coef * ent}


def toy_batch(seed: int, batch: int = 3, length: int = 5, vocab: int = 4, features: int = 3):
    """A linear softmax policy logits = x @ W in float64 and the fixed inputs of the loss."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, features, generator=g, dtype=DT)
    weights = torch.randn(features, vocab, generator=g, dtype=DT)
    base_weights = weights + 0.3 * torch.randn(features, vocab, generator=g, dtype=DT)
    targets = torch.randint(0, vocab, (batch, length), generator=g)
    credits = torch.randn(batch, length, generator=g, dtype=DT)
    mask = torch.rand(batch, length, generator=g) < 0.7
    mask[0, 0] = True
    base_logp, _ = token_logprobs_and_entropy(x @ base_weights, targets)
    return x, weights, targets, credits, mask, base_logp


def evaluate(x, weights, targets, sampler_logp, base_logp, credits, mask, **kw):
    logp, entropy = token_logprobs_and_entropy(x @ weights, targets)
    return token_loss(logp, sampler_logp, base_logp, credits, mask, entropy=entropy, **kw)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kl_coef=st.floats(0.0, 1.0),
    entropy_coef=st.floats(0.0, 1.0),
    cap=st.floats(0.5, 3.0),
)
def test_values_match_loop(seed: int, kl_coef: float, entropy_coef: float, cap: float) -> None:
    g = torch.Generator().manual_seed(seed)
    shape = (
        int(torch.randint(1, 4, (1,), generator=g)),
        int(torch.randint(1, 7, (1,), generator=g)),
    )
    logp = -torch.rand(shape, generator=g, dtype=DT) * 3
    sampler = logp + torch.randn(shape, generator=g, dtype=DT)
    base = logp + 0.5 * torch.randn(shape, generator=g, dtype=DT)
    credits = torch.randn(shape, generator=g, dtype=DT)
    entropy = torch.rand(shape, generator=g, dtype=DT)
    mask = torch.rand(shape, generator=g) < 0.6
    terms = token_loss(logp, sampler, base, credits, mask, kl_coef, entropy, entropy_coef, cap)

    ratio = np.exp(logp.numpy() - sampler.numpy())
    m = mask.numpy()
    n = max(m.sum(), 1)
    expected = brute_loss(
        logp.numpy(),
        np.minimum(ratio, cap),
        base.numpy(),
        credits.numpy(),
        m,
        kl_coef,
        entropy.numpy(),
        entropy_coef,
        n,
    )
    assert terms.total.item() == pytest.approx(expected["total"], rel=1e-10, abs=1e-12)
    for key in ("pg", "kl", "entropy"):
        assert getattr(terms, key) == pytest.approx(expected[key], rel=1e-10, abs=1e-12)
    assert terms.mean_ratio == pytest.approx(ratio[m].sum() / n, rel=1e-10, abs=1e-12)
    assert terms.clip_fraction == pytest.approx((ratio[m] > cap).sum() / n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_matches_finite_differences_with_capped_ratio(seed: int) -> None:
    """All ratios far above the cap: ρ̄ = cap is constant near W, so FD of token_loss is exact."""
    x, weights, targets, credits, mask, base_logp = toy_batch(seed)
    with torch.no_grad():
        logp0, _ = token_logprobs_and_entropy(x @ weights, targets)
    sampler = logp0 - 3.0  # ratio e^3 ≈ 20 > cap 2 under small perturbations
    kw = {"kl_coef": 0.3, "entropy_coef": 0.2, "ratio_cap": 2.0}

    w = weights.clone().requires_grad_(True)
    terms = evaluate(x, w, targets, sampler, base_logp, credits, mask, **kw)
    assert terms.clip_fraction == pytest.approx(1.0)
    (grad,) = torch.autograd.grad(terms.total, w)

    h = 1e-6
    fd = torch.zeros_like(weights)
    for idx in np.ndindex(tuple(weights.shape)):
        plus, minus = weights.clone(), weights.clone()
        plus[idx] += h
        minus[idx] -= h
        f_plus = evaluate(x, plus, targets, sampler, base_logp, credits, mask, **kw).total
        f_minus = evaluate(x, minus, targets, sampler, base_logp, credits, mask, **kw).total
        fd[idx] = (f_plus - f_minus) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("seed", [3, 4])
def test_gradient_treats_ratio_as_constant(seed: int) -> None:
    """Mixed capped/uncapped ratios: autograd equals FD of the SPEC formula with ρ̄ frozen."""
    x, weights, targets, credits, mask, base_logp = toy_batch(seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        logp0, _ = token_logprobs_and_entropy(x @ weights, targets)
    sampler = logp0 + 1.5 * torch.randn(logp0.shape, generator=g, dtype=DT)
    rho = torch.exp(logp0 - sampler).clamp(max=2.0)
    assert 0 < ((rho == 2.0) & mask).sum() < mask.sum()

    w = weights.clone().requires_grad_(True)
    total = evaluate(
        x, w, targets, sampler, base_logp, credits, mask, kl_coef=0.5, entropy_coef=0.1
    ).total
    (grad,) = torch.autograd.grad(total, w)

    def frozen(wt: torch.Tensor) -> float:
        logp, entropy = token_logprobs_and_entropy(x @ wt, targets)
        n = float(mask.sum())
        args = [t.numpy() for t in (logp, rho, base_logp, credits, mask)]
        return brute_loss(*args, 0.5, entropy.numpy(), 0.1, n)["total"]

    h = 1e-6
    fd = torch.zeros_like(weights)
    for idx in np.ndindex(tuple(weights.shape)):
        plus, minus = weights.clone(), weights.clone()
        plus[idx] += h
        minus[idx] -= h
        fd[idx] = (frozen(plus) - frozen(minus)) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)


def test_ratio_cap_scales_per_token_gradient() -> None:
    logp = torch.tensor([[-1.0, -1.0, -1.0]], dtype=DT, requires_grad=True)
    sampler = torch.tensor([[-1.0 - math.log(5.0), -1.0 + math.log(2.0), -1.0]], dtype=DT)
    credits = torch.tensor([[1.0, 1.0, 1.0]], dtype=DT)
    ones, zeros = torch.ones_like(credits), torch.zeros_like(credits)
    terms = token_loss(logp, sampler, logp.detach(), credits, ones, 0.0, zeros, 0.0, ratio_cap=2.0)
    (grad,) = torch.autograd.grad(terms.total, logp)
    # ratios 5 (capped to 2), 0.5, 1; the gradient is −C ρ̄ / N with no term from ρ̄ itself
    torch.testing.assert_close(grad, torch.tensor([[-2.0, -0.5, -1.0]], dtype=DT) / 3)
    assert terms.clip_fraction == pytest.approx(1 / 3)
    assert terms.mean_ratio == pytest.approx((5.0 + 0.5 + 1.0) / 3)
    assert terms.kl == pytest.approx(0.0)


def test_kl_term_is_weighted_by_the_truncated_ratio() -> None:
    """On-policy ρ̄ = 1 and the k3 term is the plain mean; off-policy each token's k3 is weighted
    by its ρ̄ = min(π_θ/π_sampler, cap), as in the authors' code."""
    logp = torch.tensor([[-1.0, -2.0, -0.5]], dtype=DT, requires_grad=True)
    base = torch.tensor([[-1.5, -1.0, -0.25]], dtype=DT)
    d = base - logp.detach()
    k3 = torch.exp(d) - 1 - d
    ones, zeros = torch.ones_like(base), torch.zeros_like(base)
    on = token_loss(logp, logp.detach(), base, zeros, ones, 1.0, zeros, 0.0)
    assert on.kl == pytest.approx(k3.mean().item(), rel=1e-12)
    sampler = logp.detach() - torch.tensor([[math.log(5.0), -math.log(2.0), 0.0]], dtype=DT)
    off = token_loss(logp, sampler, base, zeros, ones, 1.0, zeros, 0.0, ratio_cap=2.0)
    rho = torch.tensor([[2.0, 0.5, 1.0]], dtype=DT)  # ratios 5 (capped), 0.5, 1
    assert off.kl == pytest.approx((rho * k3).mean().item(), rel=1e-12)
    assert off.kl != pytest.approx(on.kl)
    (grad,) = torch.autograd.grad(off.total, logp)  # ρ̄ is a constant weight: ρ̄ (1 − e^d) / N
    torch.testing.assert_close(grad, rho * (1 - torch.exp(d)) / 3)


@pytest.mark.parametrize("dtype", [torch.float32, DT])
def test_log_ratios_are_clamped_before_exp(dtype: torch.dtype) -> None:
    """Log-ratios of 1000 would overflow exp to inf; clamped at LOG_RATIO_MAX = 20 every value and
    gradient stays finite, and ρ̄ is still the cap."""
    logp = torch.tensor([[-1.0, -30.0, -0.5]], dtype=dtype, requires_grad=True)
    sampler = torch.tensor([[-1001.0, -0.1, -0.5]], dtype=dtype)  # π_θ/π_sampler = e^1000
    base = torch.tensor([[-1.0, 970.0, -0.5]], dtype=dtype)  # d = 1000 at token 1
    credits = torch.ones_like(base)
    ones, zeros = torch.ones_like(base), torch.zeros_like(base)
    terms = token_loss(logp, sampler, base, credits, ones, 0.1, zeros, 0.0, ratio_cap=2.0)
    assert LOG_RATIO_MAX == 20.0
    assert math.isfinite(terms.total.item()) and math.isfinite(terms.kl)
    assert terms.mean_ratio == pytest.approx((math.exp(20.0) + math.exp(-29.9) + 1) / 3, rel=1e-6)
    k3_clamped = math.exp(20.0) - 1 - 20.0
    ratio_1 = math.exp(-29.9)
    assert terms.kl == pytest.approx(ratio_1 * k3_clamped / 3, rel=1e-5)
    (grad,) = torch.autograd.grad(terms.total, logp)
    assert torch.isfinite(grad).all()
    assert grad[0, 0].item() == pytest.approx(-2.0 / 3)  # ρ̄ = cap, not inf
    assert grad[0, 1].item() == pytest.approx(-ratio_1 / 3, rel=1e-4)  # clamped k3: PG only


def test_normaliser_micro_batches_add_up_to_full_batch() -> None:
    x, weights, targets, credits, mask, base_logp = toy_batch(7, batch=6)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        logp0, _ = token_logprobs_and_entropy(x @ weights, targets)
    sampler = logp0 + torch.randn(logp0.shape, generator=g, dtype=DT)
    kw = {"kl_coef": 0.2, "entropy_coef": 0.05}

    full_w = weights.clone().requires_grad_(True)
    full = evaluate(x, full_w, targets, sampler, base_logp, credits, mask, **kw)
    full.total.backward()

    acc_w = weights.clone().requires_grad_(True)
    n = float(mask.sum())
    halves = [slice(0, 2), slice(2, 6)]  # unequal token counts: a per-half mean would differ
    parts = [
        evaluate(
            x[s],
            acc_w,
            targets[s],
            sampler[s],
            base_logp[s],
            credits[s],
            mask[s],
            normaliser=n,
            **kw,
        )
        for s in halves
    ]
    for part in parts:
        part.total.backward()
    torch.testing.assert_close(acc_w.grad, full_w.grad, rtol=1e-12, atol=1e-12)
    for key in ("pg", "kl", "entropy", "mean_ratio", "clip_fraction"):
        assert sum(getattr(p, key) for p in parts) == pytest.approx(getattr(full, key), rel=1e-12)

    unnormalised = [
        evaluate(x[s], weights, targets[s], sampler[s], base_logp[s], credits[s], mask[s], **kw)
        for s in halves
    ]
    assert sum(p.pg for p in unnormalised) != pytest.approx(full.pg)


def test_off_mask_values_are_ignored() -> None:
    logp = torch.tensor([[-0.5, -0.2, -3.0]], dtype=DT, requires_grad=True)
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    junk = torch.tensor([[-0.7, 1e4, -2.0]], dtype=DT)  # exp(1e4) would overflow if not masked
    base = torch.tensor([[-0.4, 1e4, -2.5]], dtype=DT)
    credits = torch.tensor([[0.3, float("nan"), -1.0]], dtype=DT)
    entropy = torch.tensor([[0.9, float("nan"), 0.1]], dtype=DT, requires_grad=True)
    terms = token_loss(logp, junk, base, credits, mask, 0.1, entropy, 0.01)
    logp_grad, entropy_grad = torch.autograd.grad(terms.total, [logp, entropy])
    assert torch.isfinite(terms.total)
    assert logp_grad[0, 1] == 0.0 and entropy_grad[0, 1] == 0.0
    assert torch.all(torch.isfinite(logp_grad)) and torch.all(torch.isfinite(entropy_grad))


def test_empty_mask_and_bad_arguments() -> None:
    logp = torch.zeros(2, 3, dtype=DT, requires_grad=True)
    zeros = torch.zeros(2, 3, dtype=DT)
    terms = token_loss(logp, zeros, zeros, zeros + 1, zeros, 0.1, zeros, 0.1)
    assert terms.total.item() == 0.0
    with pytest.raises(ValueError, match="normaliser"):
        token_loss(logp, zeros, zeros, zeros, zeros + 1, 0.0, zeros, 0.0, normaliser=0)
    with pytest.raises(ValueError, match="credits"):
        token_loss(logp, zeros, zeros, torch.zeros(2, 1), zeros + 1, 0.0, zeros, 0.0)


@pytest.mark.parametrize("shape", [(1, 1, 2), (2, 5, 7), (3, 4, 50)])
def test_logprobs_and_entropy_match_loop(shape: tuple[int, int, int]) -> None:
    g = torch.Generator().manual_seed(sum(shape))
    logits = 3 * torch.randn(shape, generator=g, dtype=DT)
    targets = torch.randint(0, shape[-1], shape[:-1], generator=g)
    logp, entropy = token_logprobs_and_entropy(logits, targets)
    for b, t in np.ndindex(shape[:-1]):
        z = logits[b, t].numpy()
        log_z = math.log(sum(math.exp(v) for v in z))
        probs = [math.exp(v - log_z) for v in z]
        assert logp[b, t].item() == pytest.approx(z[targets[b, t]] - log_z, rel=1e-12)
        expected_h = -sum(p * (v - log_z) for p, v in zip(probs, z, strict=True))
        assert entropy[b, t].item() == pytest.approx(expected_h, rel=1e-10, abs=1e-12)


def test_logprobs_and_entropy_low_precision_and_uniform() -> None:
    logits = torch.zeros(2, 3, 16, dtype=torch.bfloat16)
    logp, entropy = token_logprobs_and_entropy(logits, torch.zeros(2, 3, dtype=torch.long))
    assert logp.dtype == torch.float32 and entropy.dtype == torch.float32
    torch.testing.assert_close(logp, torch.full((2, 3), -math.log(16)))
    torch.testing.assert_close(entropy, torch.full((2, 3), math.log(16)))


def test_masked_logprobs_and_entropy_match_the_restricted_softmax() -> None:
    g = torch.Generator().manual_seed(7)
    logits = (3 * torch.randn(2, 3, 9, generator=g, dtype=DT)).requires_grad_()
    allowed = torch.rand(2, 3, 9, generator=g) < 0.4
    allowed[..., 0] = True  # at least one allowed token everywhere
    allowed[1, 2] = True  # an unconstrained position
    targets = torch.stack([torch.multinomial(a.double(), 1, generator=g)[0] for a in allowed.view(-1, 9)])
    targets = targets.view(2, 3)
    logp, entropy = token_logprobs_and_entropy(logits, targets, allowed)
    for b, t in np.ndindex(2, 3):
        z = {v: logits[b, t, v].item() for v in range(9) if allowed[b, t, v]}
        log_z = math.log(sum(math.exp(x) for x in z.values()))
        assert logp[b, t].item() == pytest.approx(z[int(targets[b, t])] - log_z, rel=1e-12)
        expected_h = -sum(math.exp(x - log_z) * (x - log_z) for x in z.values())
        assert entropy[b, t].item() == pytest.approx(expected_h, rel=1e-10, abs=1e-12)
    (logp.sum() + entropy.sum()).backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[~allowed] == 0).all()  # masked logits get no gradient


# ---- the PPO-clipped loss -------------------------------------------------------------------------


def brute_ppo(
    logp: np.ndarray,
    old_logp: np.ndarray,
    sampler_logp: np.ndarray,
    base_logp: np.ndarray,
    credits: np.ndarray,
    mask: np.ndarray,
    entropy: np.ndarray,
    eps: float,
    kl_coef: float,
    entropy_coef: float,
    cap: float,
    n: float,
) -> dict[str, object]:
    """The PPO loss token by token, with its gradients worked out by hand: per token, which
    branch of min(r C, clip(r) C) is taken, and d/d log π_θ of each term."""
    out = {"pg": 0.0, "kl": 0.0, "entropy": 0.0, "approx_kl": 0.0, "ppo_clip_fraction": 0.0,
           "mean_ratio": 0.0, "clip_fraction": 0.0}  # fmt: skip
    d_logp, d_entropy = np.zeros_like(logp), np.zeros_like(logp)
    for idx in np.ndindex(logp.shape):
        if not mask[idx]:
            continue
        c = credits[idx]
        behaviour = math.exp(old_logp[idx] - sampler_logp[idx])  # π_old / π_sampler
        rho = min(behaviour, cap)
        r = math.exp(logp[idx] - old_logp[idx])
        clipped = min(max(r, 1 - eps), 1 + eps)
        if r * c <= clipped * c:  # the unclipped branch: its gradient is r C
            out["pg"] -= rho * r * c / n
            d_logp[idx] -= rho * r * c / n
        else:  # the clip is active: a constant
            out["pg"] -= rho * clipped * c / n
        d = base_logp[idx] - logp[idx]
        out["kl"] += rho * (math.exp(d) - 1 - d) / n
        d_logp[idx] += kl_coef * rho * (1 - math.exp(d)) / n
        out["entropy"] += entropy[idx] / n
        d_entropy[idx] = -entropy_coef / n
        out["approx_kl"] += (r - 1 - math.log(r)) / n
        out["ppo_clip_fraction"] += (abs(r - 1) > eps) / n
        out["mean_ratio"] += behaviour / n
        out["clip_fraction"] += (behaviour > cap) / n
    out["total"] = out["pg"] + kl_coef * out["kl"] - entropy_coef * out["entropy"]
    out["d_logp"], out["d_entropy"] = d_logp, d_entropy
    return out


def check_ppo_against_loop(logp, old, sampler, base, credits, mask, entropy, **kw) -> None:
    logp = logp.clone().requires_grad_(True)
    entropy = entropy.clone().requires_grad_(True)
    terms = ppo_token_loss(logp, old, sampler, base, credits, mask, entropy, **kw)
    grads = torch.autograd.grad(terms.total, [logp, entropy])
    n = kw.get("normaliser") or max(float(mask.sum()), 1.0)
    expected = brute_ppo(
        *(t.detach().numpy() for t in (logp, old, sampler, base, credits, mask, entropy)),
        kw["clip_epsilon"], kw.get("kl_coef", 0.0), kw.get("entropy_coef", 0.0),
        kw.get("ratio_cap", 2.0), n,
    )  # fmt: skip
    assert terms.total.item() == pytest.approx(expected["total"], rel=1e-10, abs=1e-12)
    for key in ("pg", "kl", "entropy", "approx_kl", "ppo_clip_fraction", "mean_ratio",
                "clip_fraction"):  # fmt: skip
        assert getattr(terms, key) == pytest.approx(expected[key], rel=1e-10, abs=1e-12), key
    np.testing.assert_allclose(grads[0].numpy(), expected["d_logp"], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(grads[1].numpy(), expected["d_entropy"], rtol=1e-10, atol=1e-13)


def test_ppo_clip_in_both_directions_matches_the_loop() -> None:
    """One token per case of min(r C, clip(r) C), ε = 0.2: r above 1 + ε with C > 0 (clipped: no
    gradient) and C < 0 (not clipped: pushed down), r below 1 − ε with C < 0 (clipped) and C > 0
    (not clipped: pushed up), r inside; and off-engine weights ρ̄ = min(π_old/π_sampler, 2)."""
    r = torch.tensor([[1.5, 1.5, 0.6, 0.6, 1.1, 0.95]], dtype=DT)
    credits = torch.tensor([[0.8, -0.8, -1.3, 1.3, -0.4, 2.0]], dtype=DT)
    old = torch.tensor([[-1.0, -0.7, -2.0, -0.3, -1.2, -0.9]], dtype=DT)
    logp = old + torch.log(r)
    sampler = old - torch.tensor([[0.0, math.log(3.0), 0.2, -0.5, 0.0, 0.1]], dtype=DT)
    base = old + torch.tensor([[0.3, -0.2, 0.1, 0.4, -0.5, 0.0]], dtype=DT)
    entropy = torch.tensor([[0.5, 0.2, 0.9, 0.1, 0.3, 0.7]], dtype=DT)
    mask = torch.ones_like(r, dtype=torch.bool)
    kw = {"clip_epsilon": 0.2, "kl_coef": 0.3, "entropy_coef": 0.05, "ratio_cap": 2.0}
    check_ppo_against_loop(logp, old, sampler, base, credits, mask, entropy, **kw)

    logp = logp.clone().requires_grad_(True)
    terms = ppo_token_loss(logp, old, sampler, base, credits, mask, torch.zeros_like(r),
                           clip_epsilon=0.2)  # fmt: skip
    (grad,) = torch.autograd.grad(terms.total, logp)
    assert grad[0, 0] == 0 and grad[0, 2] == 0  # the clip stops these two
    assert (grad[0, [1, 3, 4, 5]] != 0).all()
    assert terms.ppo_clip_fraction == pytest.approx(4 / 6)  # |r − 1| > ε, clipped or not
    assert terms.clip_fraction == pytest.approx(1 / 6)  # π_old/π_sampler = 3 > cap


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    eps=st.floats(0.05, 0.9),
    kl_coef=st.floats(0.0, 1.0),
    entropy_coef=st.floats(0.0, 1.0),
    cap=st.floats(1.0, 3.0),
)
def test_ppo_values_and_gradients_match_loop(seed, eps, kl_coef, entropy_coef, cap) -> None:
    g = torch.Generator().manual_seed(seed)
    shape = (
        int(torch.randint(1, 4, (1,), generator=g)),
        int(torch.randint(1, 7, (1,), generator=g)),
    )
    old = -torch.rand(shape, generator=g, dtype=DT) * 3
    logp = old + 0.6 * torch.randn(shape, generator=g, dtype=DT)  # ratios around both clips
    sampler = old + 0.7 * torch.randn(shape, generator=g, dtype=DT)
    base = logp + 0.5 * torch.randn(shape, generator=g, dtype=DT)
    credits = torch.randn(shape, generator=g, dtype=DT)
    entropy = torch.rand(shape, generator=g, dtype=DT)
    mask = torch.rand(shape, generator=g) < 0.7
    normaliser = None if seed % 2 else 11.0
    check_ppo_against_loop(
        logp, old, sampler, base, credits, mask, entropy, clip_epsilon=eps, kl_coef=kl_coef,
        entropy_coef=entropy_coef, ratio_cap=cap, normaliser=normaliser,
    )


@pytest.mark.parametrize("seed", [0, 5, 9])
def test_ppo_gradient_at_the_old_policy_is_the_reinforce_gradient(seed: int) -> None:
    """At θ = θ_old (the first step of an iteration) r = 1 everywhere: the gradient of the PPO
    loss with respect to the policy's weights is REINFORCE's, off-engine weights (some capped),
    KL and entropy terms included; the diagnostics are 0."""
    x, weights, targets, credits, mask, base_logp = toy_batch(seed, batch=4, length=6)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        old, _ = token_logprobs_and_entropy(x @ weights, targets)
    sampler = old + torch.randn(old.shape, generator=g, dtype=DT)
    assert 0 < ((old - sampler > math.log(2.0)) & mask).sum() < mask.sum()  # some ρ̄ capped
    kw = {"kl_coef": 0.3, "entropy_coef": 0.1, "ratio_cap": 2.0, "normaliser": 30.0}

    def loss_and_grad(make):
        w = weights.clone().requires_grad_(True)
        logp, entropy = token_logprobs_and_entropy(x @ w, targets)
        terms = make(logp, entropy)
        (grad,) = torch.autograd.grad(terms.total, w)
        return terms, grad

    reinforce, grad_reinforce = loss_and_grad(
        lambda logp, entropy: token_loss(
            logp, sampler, base_logp, credits, mask, entropy=entropy, **kw
        )
    )
    ppo, grad_ppo = loss_and_grad(
        lambda logp, entropy: ppo_token_loss(
            logp, old, sampler, base_logp, credits, mask, entropy, clip_epsilon=0.2, **kw
        )
    )
    torch.testing.assert_close(grad_ppo, grad_reinforce, rtol=1e-12, atol=1e-14)
    for key in ("kl", "entropy", "mean_ratio", "clip_fraction"):
        assert getattr(ppo, key) == pytest.approx(getattr(reinforce, key), rel=1e-12)
    assert ppo.approx_kl == 0.0 and ppo.ppo_clip_fraction == 0.0
    assert reinforce.approx_kl is None and reinforce.ppo_clip_fraction is None
    # another value, the same gradient: −(1/N) Σ m ρ̄ C against −(1/N) Σ m ρ̄ C log π
    rho = torch.exp(old - sampler).clamp(max=2.0)
    assert ppo.pg == pytest.approx(-(rho * credits * mask).sum().item() / 30.0, rel=1e-12)


def test_ppo_micro_batches_add_up_and_bad_arguments() -> None:
    g = torch.Generator().manual_seed(3)
    old = -torch.rand(5, 4, generator=g, dtype=DT) * 2
    logp = (old + 0.4 * torch.randn(5, 4, generator=g, dtype=DT)).requires_grad_(True)
    sampler, base = old + 0.1, old - 0.2
    credits = torch.randn(5, 4, generator=g, dtype=DT)
    mask = torch.rand(5, 4, generator=g) < 0.8
    entropy = torch.rand(5, 4, generator=g, dtype=DT)
    kw = {"clip_epsilon": 0.1, "kl_coef": 0.2, "entropy_coef": 0.1}
    full = ppo_token_loss(logp, old, sampler, base, credits, mask, entropy, **kw)
    (full_grad,) = torch.autograd.grad(full.total, logp)
    n = float(mask.sum())
    parts = [
        ppo_token_loss(logp[s], old[s], sampler[s], base[s], credits[s], mask[s], entropy[s],
                       normaliser=n, **kw)  # fmt: skip
        for s in (slice(0, 1), slice(1, 5))
    ]
    part_grad = torch.autograd.grad(sum(p.total for p in parts), logp)[0]
    torch.testing.assert_close(part_grad, full_grad, rtol=1e-12, atol=1e-14)
    for key in ("pg", "kl", "approx_kl", "ppo_clip_fraction"):
        assert sum(getattr(p, key) for p in parts) == pytest.approx(getattr(full, key), rel=1e-12)

    for eps in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="clip_epsilon"):
            ppo_token_loss(logp, old, sampler, base, credits, mask, entropy, clip_epsilon=eps)
    with pytest.raises(ValueError, match="old_logp"):
        ppo_token_loss(logp, old[:, :2], sampler, base, credits, mask, entropy, clip_epsilon=0.2)


def test_ppo_log_ratio_is_clamped_and_the_loss_types_are_named() -> None:
    """r = e^1000 would overflow: log r is clamped at LOG_RATIO_MAX, every value stays finite (a
    negative credit there is the unclipped branch, with no gradient past the clamp)."""
    logp = torch.tensor([[-1.0, -0.5]], dtype=DT, requires_grad=True)
    old = torch.tensor([[-1001.0, -0.5]], dtype=DT)
    credits = torch.tensor([[-1.0, 1.0]], dtype=DT)
    ones, zeros = torch.ones_like(credits), torch.zeros_like(credits)
    terms = ppo_token_loss(logp, old, old, old, credits, ones, zeros, clip_epsilon=0.2)
    (grad,) = torch.autograd.grad(terms.total, logp)
    assert math.isfinite(terms.total.item()) and math.isfinite(terms.approx_kl)
    assert terms.pg == pytest.approx((math.exp(LOG_RATIO_MAX) - 1.0) / 2)
    assert torch.isfinite(grad).all() and grad[0, 0] == 0
    assert [t.value for t in LossType] == ["reinforce", "ppo"]
