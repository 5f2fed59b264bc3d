"""Grouped-query attention on the CPU: the engine's kernel choice changes speed, not results."""

from __future__ import annotations

import torch

from detente.lm.attention import CPU_GQA
from detente.lm.engine import Engine
from detente.lm.tiny import build_untrained

from .helpers import extend, perturb_adapter, request, synthetic_chats


def _model(tokenizer, kv_heads: int, implementation: str = "sdpa"):
    model = build_untrained(
        tokenizer, hidden=64, layers=2, heads=4, kv_heads=kv_heads, seed=3, init_std=0.2
    )
    model.set_attn_implementation(implementation)
    return model


def _batch(tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sequences, the shorter left-padded (the engine's layout)."""
    long = tokenizer.encode(
        "Round 3. Bob played <A>. Your move? <B> we split", add_special_tokens=False
    )
    short = tokenizer.encode("Round 1. Your move? <A>", add_special_tokens=False)
    pad = len(long) - len(short)
    ids = torch.tensor([long, [tokenizer.pad_token_id or 0] * pad + short])
    mask = torch.ones_like(ids)
    mask[1, :pad] = 0
    return ids, mask


def test_the_engine_gives_only_grouped_heads_the_cpu_kernel(tokenizer):
    grouped = Engine(_model(tokenizer, kv_heads=2), tokenizer)
    assert grouped.model.config._attn_implementation == CPU_GQA
    plain = Engine(_model(tokenizer, kv_heads=4), tokenizer)
    assert plain.model.config._attn_implementation == "sdpa"


def test_scores_and_lora_gradients_equal_the_repeating_reference(tokenizer):
    """Eager attention repeats the key/value heads; the grouped kernel must agree with it on
    padded batches, in log-probs and in the gradient that reaches a LoRA adapter."""
    ids, mask = _batch(tokenizer)
    results = []
    for implementation in ("eager", "sdpa"):
        engine = Engine(_model(tokenizer, kv_heads=2, implementation=implementation), tokenizer)
        engine.add_adapter("learner", r=4, alpha=8, init_seed=1)
        with torch.enable_grad():
            scores = engine.score(ids, mask, "learner").logprobs
            (scores * mask[:, 1:]).sum().backward()
        grads = [p.grad.clone() for p in engine.parameters_of("learner") if p.grad is not None]
        results.append((scores.detach(), grads))
    (reference, reference_grads), (grouped, grouped_grads) = results
    real = mask[:, 1:].bool()
    torch.testing.assert_close(grouped[real], reference[real], atol=1e-5, rtol=1e-5)
    assert len(grouped_grads) == len(reference_grads) > 0
    for a, b in zip(grouped_grads, reference_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_plain_generate_works_with_the_cpu_kernel(tokenizer):
    """The naive baseline of the benchmark calls ``generate`` with a 2-D mask."""
    ids, mask = _batch(tokenizer)
    outputs = []
    for implementation in ("eager", CPU_GQA):
        model = _model(tokenizer, kv_heads=2, implementation=implementation)
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0
        )
        outputs.append(out)
    assert torch.equal(outputs[0], outputs[1])


def test_multi_turn_sessions_with_mixed_adapters_match_the_repeating_reference(tokenizer):
    """Batched prefill and decoding over cached, padded sessions, two adapters and the base
    in one batch: the same samples and log-probs with the grouped kernel as with eager."""
    chats = [chat[:2] for chat in synthetic_chats(6, seed=5)]
    runs = []
    for implementation in ("eager", "sdpa"):
        engine = Engine(_model(tokenizer, kv_heads=2, implementation=implementation), tokenizer)
        for k, name in enumerate(("x", "y")):
            engine.add_adapter(name, r=4, alpha=8, init_seed=k)
            perturb_adapter(engine, name, seed=k)
        adapters = ["x", "y", None] * 2
        messages = list(chats)
        results = []
        for turn in range(3):
            batch = [
                request(f"s{i}", m, adapter=a, seed=10 * i + turn, max_new_tokens=6)
                for i, (m, a) in enumerate(zip(messages, adapters, strict=True))
            ]
            out = engine.generate(batch)
            results.append(out)
            messages = [
                extend(m, r, f"Round {turn + 2}.") for m, r in zip(messages, out, strict=True)
            ]
        runs.append(results)
    for reference, grouped in zip(*runs, strict=True):
        for a, b in zip(reference, grouped, strict=True):
            assert a.token_ids == b.token_ids
            torch.testing.assert_close(
                torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4, rtol=1e-4
            )
