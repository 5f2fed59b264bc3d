"""GPU check of the transformers engine and the trainer's step, in bf16 on CUDA, with no download.

Needs torch, transformers and peft only (no vLLM, no network, not even detente's other
dependencies: the modules it uses are imported from ``src/`` without the package's registry
side effects when those dependencies are missing). The model is a randomly initialised Qwen2
of Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14 query / 2 key-value heads, MLP 4864,
vocabulary 151,936, tied embeddings: 494M parameters) with a byte-level tokenizer trained here
on synthetic chats; the final norm is scaled so that next-token distributions are peaked, as a
trained model's are (a random model's near-uniform draws would flip on any rounding).

Checks, printed as one JSON object (``--out`` also writes it):

* ``mixed_adapters``: one batch of requests on two LoRA adapters and the base, against each
  adapter's requests generated alone with the same seeds: the share of identical replies and
  the largest log-prob gap over the common prefix of each pair;
* ``on_policy``: the trainer's scoring path (``learn.scoring.action_logprobs``, the live
  adapter, the sampler's temperature) over the sampled replies: the ratio
  π_θ / π_sampler, 1 on-policy up to bf16 rounding;
* ``rollout``: new tokens per second of one mixed-adapter batch (``--rollout-rows`` requests
  of ``--rollout-tokens`` new tokens);
* ``training``: the trainer's step (action-position scoring, the token loss, backward, Adam)
  on synthetic sequences, its tokens/s and model FLOP utilisation: FLOPs as
  ``benchmarks.train_throughput`` counts them, against a bf16 matmul measured in the same run
  and, on CUDA, against ``--peak-tflops`` (the H100/H200 SXM bf16 dense peak by default).

Run (repository root; about 2 minutes of an H100 or H200 expected)::

    PYTHONUNBUFFERED=1 python -m benchmarks.gpu_check --out gpu_check.json

``--size toy`` runs the same checks on a 2-layer model in seconds on a CPU (the test suite
does, in float32). The exit status is 1 when a check is outside its tolerance.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# Qwen2.5-0.5B's shape, and a toy one for CPU tests.
SIZES: dict[str, dict[str, Any]] = {
    "0.5b": dict(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
        rope_theta=1_000_000.0, rms_norm_eps=1e-6,
    ),
    "toy": dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=None, max_position_embeddings=4096,
        rope_theta=1_000_000.0, rms_norm_eps=1e-6,
    ),
}
# Tolerances of the checks: bf16 on CUDA, float32 (the CPU test) much tighter.
TOLERANCE = {
    torch.bfloat16: dict(equal_share=0.9, prefix_gap=0.1, mean_ratio=0.02, max_log_ratio=0.25),
    torch.float32: dict(equal_share=1.0, prefix_gap=1e-3, mean_ratio=1e-4, max_log_ratio=1e-3),
}
H100_BF16_DENSE_TFLOPS = 989.4  # NVIDIA's figure for H100 SXM (H200 SXM: the same)
WORDS = [
    "I", "you", "we", "will", "play", "cooperate", "defect", "trust", "split", "coins", "round",
    "hand", "rock", "paper",
]


def detente_modules() -> dict[str, Any]:
    """The engine and trainer modules. Where detente's other dependencies (pydantic, ...) are
    missing, ``detente.lm`` is set up without running its ``__init__`` (which registers the
    embedded models and imports more), so that torch, transformers and peft suffice."""
    src = Path(__file__).resolve().parents[1] / "src"
    if (src / "detente").is_dir() and str(src) not in sys.path:
        sys.path.insert(0, str(src))
    try:
        importlib.import_module("detente.lm")
    except ImportError:
        spec = importlib.util.find_spec("detente.lm")
        assert spec is not None
        sys.modules["detente.lm"] = importlib.util.module_from_spec(spec)
    names = {
        "engine": "detente.lm.engine",
        "tokenizer": "detente.lm.tokenizer",
        "types": "detente.lm.types",
        "scoring": "detente.learn.scoring",
        "loss": "detente.learn.loss",
    }
    return {key: importlib.import_module(name) for key, name in names.items()}


@dataclass
class Sequence_:
    """The fields of ``detente.learn.batch.TokenSequence`` that ``pad_batch`` reads (that module
    also needs the game records, hence pydantic)."""

    tokens: list[int]
    action: list[int]
    credit: list[float]
    sampler_logp: list[float]
    allowed: list[None]


def synthetic_chat(rng: random.Random, words: int) -> tuple[dict[str, str], ...]:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return ({"role": "system", "content": "You play a game."}, {"role": "user", "content": text})


def build(size: str, device: torch.device, dtype: torch.dtype, seed: int = 0) -> tuple[Any, Any]:
    """A random Qwen2 of the given size and a tokenizer trained on synthetic chats."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    mods = detente_modules()
    rng = random.Random(seed)
    texts = [
        f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
        for _ in range(300)
        for m in synthetic_chat(rng, 12)
    ]
    tokenizer = mods["tokenizer"].train_tokenizer(texts, vocab_size=400)
    shape = dict(SIZES[size])
    shape["vocab_size"] = shape["vocab_size"] or len(tokenizer)
    config = Qwen2Config(
        **shape,
        tie_word_embeddings=True,
        initializer_range=0.02,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    with torch.no_grad():  # peaked next-token distributions: logits of std about 4
        model.model.norm.weight.fill_(4.0 / (0.02 * math.sqrt(config.hidden_size)))
    return model.to(dtype).eval(), tokenizer


def add_adapters(engine: Any, names: tuple[str, ...]) -> None:
    for k, name in enumerate(names):
        engine.add_adapter(name, r=8, alpha=16, init_seed=k + 1)
        generator = torch.Generator().manual_seed(100 + k)
        with torch.no_grad():  # B = 0 would equal the base
            for p in engine.parameters_of(name):
                noise = torch.randn(p.shape, generator=generator) * 0.05
                p.add_(noise.to(p.device, p.dtype))


def requests(mods: Any, rows: int, tokens: int, adapters: tuple[str | None, ...], tag: str) -> list:
    rng = random.Random(7)
    types = mods["types"]
    sampling = types.SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=tokens)
    return [
        types.GenerationRequest(
            f"{tag}{i}", synthetic_chat(rng, rng.randint(4, 24)), adapters[i % len(adapters)],
            1000 + i, sampling,
        )
        for i in range(rows)
    ]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_mixed(engine: Any, mods: Any, rows: int, tokens: int) -> tuple[dict, list]:
    adapters = ("a", "b", None)
    mixed = engine.generate(requests(mods, rows, tokens, adapters, "mixed"))
    alone: dict[int, Any] = {}
    for adapter in adapters:
        group = [r for r in requests(mods, rows, tokens, adapters, "alone") if r.adapter == adapter]
        for request, result in zip(group, engine.generate(group), strict=True):
            alone[int(request.session_id.removeprefix("alone"))] = result
    equal, gap = 0, 0.0
    for i, result in enumerate(mixed):
        other = alone[i]
        equal += result.token_ids == other.token_ids
        for t, (a, b) in enumerate(zip(result.token_ids, other.token_ids, strict=False)):
            gap = max(gap, abs(result.logprobs[t] - other.logprobs[t]))
            if a != b:
                break
    base = [r for i, r in enumerate(mixed) if adapters[i % 3] is None]
    live = [r for i, r in enumerate(mixed) if adapters[i % 3] == "a"]
    changed = sum(x.token_ids != y.token_ids for x, y in zip(live, base, strict=False))
    report = {
        "rows": rows,
        "equal_share": equal / rows,
        "prefix_logprob_gap": gap,
        "adapter_changes_replies": changed / max(1, min(len(live), len(base))),
    }
    return report, [(r, adapters[i % 3]) for i, r in enumerate(mixed)]


def check_on_policy(engine: Any, mods: Any, sampled: list) -> dict:
    scoring = mods["scoring"]
    sequences = [
        Sequence_(
            list(r.prompt_ids) + list(r.token_ids),
            [0] * len(r.prompt_ids) + [1] * len(r.token_ids),
            [1.0] * (len(r.prompt_ids) + len(r.token_ids)),
            [0.0] * len(r.prompt_ids) + list(r.logprobs),
            [None] * (len(r.prompt_ids) + len(r.token_ids)),
        )
        for r, adapter in sampled
        if adapter == "a" and r.token_ids
    ]
    batch = scoring.pad_batch(sequences, engine.chat.pad_id, engine.device)
    with torch.no_grad(), engine.use_adapter("a") as model:
        logp = scoring.action_logprobs(model, batch, temperature=1.0).logp
    log_ratio = (logp - batch.sampler_logp).double()
    return {
        "action_tokens": int(log_ratio.numel()),
        "mean_ratio": float(log_ratio.exp().mean()),
        "max_abs_log_ratio": float(log_ratio.abs().max()),
    }


def measure_rollout(engine: Any, mods: Any, rows: int, tokens: int) -> dict:
    engine.generate(requests(mods, min(rows, 4), 4, ("a", "b", None), "warm"))
    batch = requests(mods, rows, tokens, ("a", "b", None), "speed")
    synchronize(engine.device)
    start = time.perf_counter()
    results = engine.generate(batch)
    synchronize(engine.device)
    seconds = time.perf_counter() - start
    new = sum(len(r.token_ids) for r in results)
    return {"rows": rows, "new_tokens": new, "seconds": seconds, "tokens_per_s": new / seconds}


def matmul_tflops(device: torch.device, dtype: torch.dtype) -> float:
    n = 8192 if device.type == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    repeats = 10
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def measure_training(
    engine: Any, mods: Any, seqs: int, length: int, steps: int, peak_tflops: float | None
) -> dict:
    scoring, loss = mods["scoring"], mods["loss"]
    generator = torch.Generator().manual_seed(0)
    vocab = len(engine.tokenizer)
    sequences = []
    for _ in range(seqs):
        tokens = torch.randint(4, vocab, (length,), generator=generator).tolist()
        action = [1 if k and k % 4 == 0 else 0 for k in range(length)]  # a quarter sampled
        sequences.append(
            Sequence_(tokens, action, [0.5 * a for a in action], [-1.0 * a for a in action],
                      [None] * length)
        )
    batch = scoring.pad_batch(sequences, engine.chat.pad_id, engine.device)
    params = engine.parameters_of("a")
    optimizer = torch.optim.Adam(params, lr=1e-5)
    base = engine.model.get_base_model()
    n_params = sum(p.numel() for p in base.parameters())
    head = base.get_output_embeddings().weight.numel()

    def step() -> float:
        with engine.use_adapter("a") as model:
            scores = scoring.action_logprobs(model, batch, 1.0)
        logp, entropy = scores.logp, scores.entropy
        ones = torch.ones_like(logp)[None]
        terms = loss.token_loss(
            logp[None], batch.sampler_logp[None], logp.detach()[None], batch.credit[None],
            ones, 0.0, entropy[None], 0.0,
        )
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        return float(terms.total.detach())

    engine.set_trainable("a", True)
    step()  # warm-up
    synchronize(engine.device)
    start = time.perf_counter()
    for _ in range(steps):
        value = step()
    synchronize(engine.device)
    seconds = (time.perf_counter() - start) / steps
    tokens = seqs * length
    flops = 6 * ((n_params - head) * tokens + head * batch.action_tokens) / seconds
    measured = matmul_tflops(engine.device, engine.model.dtype)
    report = {
        "sequences": seqs,
        "length": length,
        "action_tokens": batch.action_tokens,
        "seconds_per_step": seconds,
        "tokens_per_s": tokens / seconds,
        "tflops": flops / 1e12,
        "matmul_tflops": measured,
        "mfu_vs_matmul": flops / 1e12 / measured,
        "loss_finite": math.isfinite(value),
    }
    if peak_tflops:
        report["peak_tflops"] = peak_tflops
        report["mfu"] = flops / 1e12 / peak_tflops
    return report


def run(
    size: str = "0.5b",
    device: str = "cuda",
    rows: int = 24,
    tokens: int = 32,
    rollout_rows: int = 64,
    rollout_tokens: int = 128,
    train_seqs: int = 16,
    train_length: int = 1024,
    steps: int = 5,
    peak_tflops: float | None = H100_BF16_DENSE_TFLOPS,
) -> dict:
    """Every check; ``ok`` says whether all are within their tolerance (see ``TOLERANCE``)."""
    started = time.perf_counter()
    target = torch.device(device)
    dtype = torch.bfloat16 if target.type == "cuda" else torch.float32
    mods = detente_modules()
    model, tokenizer = build(size, target, dtype)
    engine = mods["engine"].Engine(model, tokenizer, device=target)
    add_adapters(engine, ("a", "b"))
    mixed, sampled = check_mixed(engine, mods, rows, tokens)
    on_policy = check_on_policy(engine, mods, sampled)
    rollout = measure_rollout(engine, mods, rollout_rows, rollout_tokens)
    peak = peak_tflops if target.type == "cuda" else None
    training = measure_training(engine, mods, train_seqs, train_length, steps, peak)
    tol = TOLERANCE[dtype]
    mixed["ok"] = (
        mixed["equal_share"] >= tol["equal_share"]
        and mixed["prefix_logprob_gap"] <= tol["prefix_gap"]
    )
    on_policy["ok"] = (
        abs(on_policy["mean_ratio"] - 1) <= tol["mean_ratio"]
        and on_policy["max_abs_log_ratio"] <= tol["max_log_ratio"]
    )
    training["ok"] = training["loss_finite"]
    import peft
    import transformers

    return {
        "ok": bool(mixed["ok"] and on_policy["ok"] and training["ok"]),
        "device": torch.cuda.get_device_name(target) if target.type == "cuda" else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "versions": {
            "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "python": platform.python_version(),
        },
        "model": {
            "size": size,
            "params": sum(p.numel() for p in engine.model.get_base_model().parameters()),
            "vocab": model.config.vocab_size,
        },
        "tolerance": tol,
        "mixed_adapters": mixed,
        "on_policy": on_policy,
        "rollout": rollout,
        "training": training,
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="0.5b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rows", type=int, default=24, help="requests of the mixed-adapter check")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per request there")
    parser.add_argument("--rollout-rows", type=int, default=64)
    parser.add_argument("--rollout-tokens", type=int, default=128)
    parser.add_argument("--train-seqs", type=int, default=16)
    parser.add_argument("--train-length", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS)
    parser.add_argument("--out")
    args = parser.parse_args()
    report = run(
        args.size, args.device, args.rows, args.tokens, args.rollout_rows, args.rollout_tokens,
        args.train_seqs, args.train_length, args.steps, args.peak_tflops,
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
