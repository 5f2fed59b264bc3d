"""The vLLM engine on the CPU, against a stand-in of vLLM 0.33.0's API (``fake_vllm``).

What a first GPU run would meet — the dtype LoRA needs, the stop set, the LoRA rank slots,
greedy log-probs, batch invariance, the GPU of each rank, the CPU LoRA cache — checked without
vLLM or a GPU. ``test_vllm_engine.py`` checks the same engine against the real vLLM on a GPU.
"""

from __future__ import annotations

import os

import pytest
import torch

from detente.lm.types import GenerationRequest, SamplingParams
from detente.lm.vllm_engine import (
    LORA_RANKS,
    VLLMEngine,
    lora_rank_slot,
    visible_devices,
    vllm_dtype,
)

from . import fake_vllm
from .helpers import user

CHAT = ({"role": "system", "content": "You play."}, user("Round 1. Reply with <A> or <B>."))


@pytest.fixture
def model_dir(tmp_path, tokenizer):
    tokenizer.save_pretrained(str(tmp_path / "model"))
    return str(tmp_path / "model")


@pytest.fixture
def llm(monkeypatch):
    fake = fake_vllm.FakeLLM()
    fake_vllm.install(monkeypatch, fake)
    return fake


def start(model_dir: str, **options) -> VLLMEngine:
    return VLLMEngine(model_dir, **{"max_lora_rank": 8, "dtype": "bfloat16", **options})


def ask(session: str, temperature: float = 1.0, adapter: str | None = None) -> GenerationRequest:
    return GenerationRequest(session, CHAT, adapter, 7, SamplingParams(temperature, 1.0, 24))


def test_lora_ranks_round_up_to_vllms_slots(model_dir, llm):
    for r in range(1, LORA_RANKS[-1] + 1):
        slot = lora_rank_slot(r)
        assert slot in fake_vllm.MAX_LORA_RANKS and slot >= r
        assert all(s < r for s in LORA_RANKS if s < slot)
    assert [lora_rank_slot(r) for r in (1, 2, 8, 9, 33, 300, 321)] == [1, 8, 8, 16, 64, 320, 512]
    with pytest.raises(ValueError, match="exceeds"):
        lora_rank_slot(513)
    engine = start(model_dir, max_lora_rank=4)  # vLLM itself refuses 4
    assert llm.instances[-1].kwargs["max_lora_rank"] == 8 and engine.llm is llm.instances[-1]


def test_lora_runs_in_bf16_or_fp16_and_float32_is_refused_before_vllm_starts(model_dir, llm):
    VLLMEngine(model_dir, max_lora_rank=8)
    assert llm.instances[-1].kwargs["dtype"] == "bfloat16"
    start(model_dir, dtype=torch.float16)
    assert llm.instances[-1].kwargs["dtype"] == "float16"
    assert vllm_dtype("bf16") == "bfloat16" and vllm_dtype(torch.bfloat16) == "bfloat16"
    with pytest.raises(ValueError, match="bfloat16 or float16"):
        start(model_dir, dtype="float32")
    assert len(llm.instances) == 2


def test_replies_stop_at_the_chat_stop_ids_only(model_dir, llm, tokenizer):
    """vLLM would also stop at the generation config's EOS ids (Qwen2.5: <|endoftext|>)."""
    engine = start(model_dir)
    end_of_text, end_of_turn = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    assert end_of_text not in engine.chat.stop_ids and end_of_turn in engine.chat.stop_ids
    llm.instances[-1].generation_eos = (end_of_text, end_of_turn)
    reply = tokenizer.encode("<A>", add_special_tokens=False)
    llm.instances[-1].script = [*reply, end_of_text, *reply, end_of_turn]
    (result,) = engine.generate([ask("s")])
    assert result.finished and result.token_ids[-1] == end_of_turn
    assert end_of_text in result.token_ids
    (_, (params,), _) = llm.instances[-1].calls[-1]
    assert params.ignore_eos and params.stop_token_ids == sorted(engine.chat.stop_ids)


def test_greedy_replies_report_logprob_zero_like_the_transformers_engine(model_dir, llm, engine):
    tokenizer = engine.tokenizer
    vllm = start(model_dir)
    llm.instances[-1].script = tokenizer.encode("<B><|im_end|>", add_special_tokens=False)
    greedy, sampled = vllm.generate([ask("g", temperature=0.0), ask("t", temperature=1.0)])
    assert greedy.logprobs == (0.0,) * len(greedy.token_ids)
    assert all(lp < 0 for lp in sampled.logprobs)  # the sampled distribution's log-probs
    (reference,) = engine.generate([ask("hf", temperature=0.0)])
    assert reference.logprobs == (0.0,) * len(reference.token_ids)


def test_batch_invariance_is_set_for_the_engine_process(model_dir, llm, monkeypatch):
    monkeypatch.delenv("VLLM_BATCH_INVARIANT", raising=False)
    start(model_dir)
    assert llm.instances[-1].environment["VLLM_BATCH_INVARIANT"] is None
    engine = start(model_dir, batch_invariant=True)
    assert llm.instances[-1].environment["VLLM_BATCH_INVARIANT"] == "1"
    assert engine.batch_invariant and "VLLM_BATCH_INVARIANT" not in os.environ


def test_each_rank_starts_vllm_on_its_own_gpu(model_dir, llm, monkeypatch):
    assert visible_devices(None, None) is None and visible_devices("cuda", "3") is None
    assert visible_devices("cuda:0", None) is None and visible_devices("cuda:2", None) == "2"
    assert visible_devices("cuda:1", "4,5,6") == "5" and visible_devices("cuda:0", "6,7") == "6"
    with pytest.raises(ValueError, match="not visible"):
        visible_devices("cuda:2", "4,5")
    with pytest.raises(ValueError, match="CUDA device"):
        visible_devices("cpu", None)

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    start(model_dir, device="cuda:1")  # what rank 1 of a torchrun launch asks for
    assert llm.instances[-1].environment["CUDA_VISIBLE_DEVICES"] == "5"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,5"  # this process keeps its view
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    with pytest.raises(ValueError, match="own process"):
        start(model_dir, device="cuda:1")


def test_the_engine_holds_at_most_max_cpu_loras_adapters(model_dir, llm, engine):
    engine.add_adapter("live", r=4, alpha=8, init_seed=1)
    snapshot = engine.snapshot_adapter("live")
    vllm = start(model_dir, max_loras=2, max_cpu_loras=3)
    assert llm.instances[-1].kwargs["max_cpu_loras"] == 3
    for name in ("a", "b", "c"):
        vllm.put_adapter(name, snapshot)
    vllm.put_adapter("a", snapshot)  # an update of a held adapter takes no new place
    with pytest.raises(ValueError, match="max_cpu_loras=3"):
        vllm.put_adapter("d", snapshot)
    assert start(model_dir, max_loras=4).max_cpu_loras == 4  # never below max_loras


def test_after_sleep_and_wake_requests_carry_the_current_adapter(model_dir, llm, engine):
    engine.add_adapter("live", r=4, alpha=8, init_seed=1)
    vllm = start(model_dir)
    fake = llm.instances[-1]
    fake.script = engine.tokenizer.encode("<A><|im_end|>", add_special_tokens=False)
    vllm.put_adapter("live", engine.snapshot_adapter("live"))
    vllm.put_adapter("live", engine.snapshot_adapter("live"))  # an update: a fresh id
    vllm.sleep()
    assert fake.asleep
    adapted, base = vllm.generate([ask("a", adapter="live"), ask("b")])  # wakes first
    assert not fake.asleep
    (_, _, loras) = fake.calls[-1]
    assert loras[0].lora_int_id == vllm.lora_id("live") == 2 and loras[1] is None
    assert adapted.logprobs != base.logprobs


def test_a_runs_vllm_replica_gets_its_dtype_rank_slot_pool_room_and_batch_invariance(
    tmp_path, llm, engine, tiny_overrides
):
    from detente.config import load_config
    from detente.lm.models import save_atomically
    from detente.policies.lm import LMBatcher
    from detente.protocol import make_protocol
    from detente.rollout.local import LocalReplica
    from detente.train.backends import make_rollouts

    save_atomically(engine.model, engine.tokenizer, tmp_path / "model")
    config = load_config(
        "ipd-adalign-tiny",
        [
            *tiny_overrides,
            f"model.name={tmp_path / 'model'}",
            "model.dtype=bfloat16",
            "device=auto",  # the tiny presets say cpu
            "model.lora.r=4",
            "runtime.engine=vllm",
            "runtime.vllm.batch_invariant=true",
            "pool.enabled=true",
            "pool.resident=10",
        ],
    )
    batcher = LMBatcher(engine, 1.0, 1.0, 16, 8)
    rollouts = make_rollouts(config, engine, batcher, make_protocol("ipd", config.game.style))
    assert isinstance(rollouts, LocalReplica)
    started = llm.instances[-1]
    assert started.kwargs["dtype"] == "bfloat16" and started.kwargs["max_lora_rank"] == 8
    assert started.kwargs["max_cpu_loras"] == 12  # live, a run: opponent, 10 resident snapshots
    assert started.environment["VLLM_BATCH_INVARIANT"] == "1"
