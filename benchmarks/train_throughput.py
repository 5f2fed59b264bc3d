"""Training-step throughput of the trainer's loss path, with model FLOP utilisation.

For each model: a LoRA adapter, a batch of sequences shaped like IPD self-play (``--seqs``
sequences of ``--length`` tokens, every ``--action-every``-th token an action token), then the
trainer's own path — ``action_logprobs`` (logits only at action positions) + ``token_loss`` +
backward — timed over a few steps. FLOPs are estimated as ``6 · N_body · tokens + 6 · V·H ·
action_tokens`` (forward 2, backward 4 per weight; N_body excludes the embedding matrix, and the
output head runs only at action positions; an upper bound for LoRA, whose frozen weights need
no weight gradients), and the peak is a float32 matmul measured in the same run. Run: ``python -m benchmarks.train_throughput``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from detente.learn.batch import TokenSequence
from detente.learn.loss import token_loss
from detente.learn.scoring import action_logprobs, pad_batch
from detente.lm.models import load_engine


def matmul_peak(size: int = 1024, repeats: int = 20) -> float:
    """Float32 GFLOP/s of a square matmul (2·n³ per product), best of a few tries."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def synthetic(seqs: int, length: int, every: int, vocab: int) -> list[TokenSequence]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(seqs):
        tokens = torch.randint(4, vocab, (length,), generator=gen).tolist()
        action = [1 if k and k % every == 0 else 0 for k in range(length)]
        out.append(
            TokenSequence(
                tokens,
                action,
                [0.5 * a for a in action],
                [-1.0 * a for a in action],
                [None] * length,  # unconstrained: the whole vocabulary
            )
        )
    return out


def measure(model: str, seqs: int, length: int, every: int, steps: int, bf16: bool) -> dict:
    engine = load_engine(model)
    engine.add_adapter("live", r=8, alpha=16)
    params = engine.parameters_of("live")
    optimizer = torch.optim.Adam(params, lr=1e-4)
    batch = pad_batch(
        synthetic(seqs, length, every, len(engine.tokenizer)), engine.chat.pad_id, engine.device
    )
    n_params = sum(p.numel() for p in engine.model.parameters())
    head = engine.model.get_base_model().get_output_embeddings().weight.numel()

    def step() -> None:
        with engine.use_adapter("live") as m:
            scores = action_logprobs(m, batch, 1.0, autocast=torch.bfloat16 if bf16 else None)
            logp, entropy = scores.logp, scores.entropy
        ones = torch.ones_like(logp)[None]
        terms = token_loss(
            logp[None],
            batch.sampler_logp[None],
            logp.detach()[None],
            batch.credit[None],
            ones,
            0.0,
            entropy[None],
            0.0,
        )
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    tokens = seqs * length
    return {
        "model": model,
        "params": n_params,
        "tokens_per_step": tokens,
        "action_tokens_per_step": batch.action_tokens,
        "seconds_per_step": seconds,
        "tokens_per_s": tokens / seconds,
        "action_tokens_per_s": batch.action_tokens / seconds,
        "gflops": 6 * ((n_params - head) * tokens + head * batch.action_tokens) / seconds / 1e9,
        "bf16": bf16,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="tiny,smollm2-135m")
    parser.add_argument("--seqs", type=int, default=32)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--action-every", type=int, default=10)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward")
    parser.add_argument("--out")
    args = parser.parse_args()
    peak = matmul_peak()
    rows = [
        measure(m, args.seqs, args.length, args.action_every, args.steps, args.bf16)
        for m in args.models.split(",")
    ]
    print(f"float32 matmul peak: {peak:.1f} GFLOP/s")
    print("| model | params | tokens/step | s/step | tokens/s | action tokens/s | MFU |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        r["mfu"] = r["gflops"] / peak
        print(
            f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['tokens_per_step']} | "
            f"{r['seconds_per_step']:.2f} | {r['tokens_per_s']:.0f} | "
            f"{r['action_tokens_per_s']:.0f} | {r['mfu']:.1%} |"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"matmul_peak_gflops": peak, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
