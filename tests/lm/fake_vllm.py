"""A stand-in for the parts of vLLM 0.33.0's API that the vLLM engine calls, for CPU tests.

It takes the same arguments and enforces the limits that stop a real first run, each as read in
the 0.33.0 wheel's source:

* ``max_lora_rank`` in ``MaxLoRARanks`` (``vllm/config/lora.py``), else a validation error;
* LoRA in float16/bfloat16 only (``vllm/lora/ops/triton_ops/lora_shrink_op.py`` asserts it at
  start-up profiling);
* ``max_cpu_loras`` ≥ ``max_loras`` (``LoRAConfig._validate_lora_config``);
* the stop set: ``stop_token_ids`` plus the generation config's EOS ids unless ``ignore_eos``
  (``SamplingParams.update_from_generation_config``);
* greedy decoding below ``_SAMPLING_EPS`` = 1e-5, whose log-prob is the unscaled one (< 0).

Replies are scripted: :attr:`FakeLLM.script` is the token sequence every request would sample
(cut at the first stop token or at ``max_tokens``); a LoRA request adds its id to each
log-prob's fraction, so adapters are visible in the results.
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass, field
from typing import Any

MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
SAMPLING_EPS = 1e-5


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = 16
    seed: int | None = None
    logprobs: int | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str = ""

    def __post_init__(self) -> None:
        if self.lora_int_id < 1:
            raise ValueError(f"id must be > 0, got {self.lora_int_id}")
        assert self.lora_path, "lora_path cannot be empty"


def TokensPrompt(prompt_token_ids: list[int]) -> dict[str, Any]:  # noqa: N802 (a TypedDict)
    return {"prompt_token_ids": prompt_token_ids}


@dataclass
class _Logprob:
    logprob: float


@dataclass
class _Completion:
    token_ids: list[int]
    logprobs: list[dict[int, _Logprob]]


@dataclass
class _Output:
    outputs: list[_Completion]


class _Engine:
    def __init__(self, llm: FakeLLM) -> None:
        self.llm = llm

    def remove_lora(self, lora_id: int) -> bool:
        return self.llm.loaded.pop(lora_id, None) is not None


@dataclass
class FakeLLM:
    """``vllm.LLM``: records its arguments and the environment it started its engine in."""

    script: list[int] = field(default_factory=list)  # the reply every request samples
    generation_eos: tuple[int, ...] = ()  # the model's generation-config EOS ids
    instances: list[FakeLLM] = field(default_factory=list)

    def __call__(self, model: str, **kwargs: Any) -> FakeLLM:
        rank = kwargs.get("max_lora_rank", 16)
        if rank not in MAX_LORA_RANKS:
            raise ValueError(f"max_lora_rank: Input should be {MAX_LORA_RANKS}, got {rank}")
        if kwargs.get("enable_lora") and kwargs.get("dtype", "auto") not in (
            "float16",
            "bfloat16",
        ):
            raise AssertionError("inputs.dtype in [torch.float16, torch.bfloat16]")
        max_loras = kwargs.get("max_loras", 1)
        if (kwargs.get("max_cpu_loras") or max_loras) < max_loras:
            raise ValueError("max_cpu_loras must be >= max_loras")
        started = FakeLLM(list(self.script), self.generation_eos)
        started.model, started.kwargs = model, kwargs
        started.environment = {
            k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "VLLM_BATCH_INVARIANT")
        }
        started.loaded, started.calls, started.asleep = {}, [], False
        started.llm_engine = _Engine(started)
        self.instances.append(started)
        return started

    def generate(
        self,
        prompts: list[dict[str, Any]],
        sampling_params: list[SamplingParams],
        *,
        use_tqdm: bool = True,
        lora_request: list[LoRARequest | None] | None = None,
    ) -> list[_Output]:
        assert not self.asleep, "generate on a sleeping engine"
        loras = lora_request or [None] * len(prompts)
        self.calls.append((prompts, sampling_params, loras))
        outputs = []
        for params, lora in zip(sampling_params, loras, strict=True):
            stops = set(params.stop_token_ids or [])
            if not params.ignore_eos:
                stops |= set(self.generation_eos)
            tokens: list[int] = []
            for token in self.script[: params.max_tokens]:
                tokens.append(token)
                if token in stops:
                    break
            if lora is not None:
                self.loaded[lora.lora_int_id] = lora.lora_path
            shift = 0.01 * lora.lora_int_id if lora is not None else 0.0
            # greedy: log p(argmax) of the unscaled distribution, below 0 as in vLLM
            value = -0.7 if params.temperature < SAMPLING_EPS else -0.5
            outputs.append(
                _Output([_Completion(tokens, [{t: _Logprob(value - shift)} for t in tokens])])
            )
        return outputs

    def reset_prefix_cache(self) -> bool:
        return True

    def sleep(self, level: int = 1) -> None:
        self.asleep = True

    def wake_up(self, tags: list[str] | None = None) -> None:
        self.asleep = False


def install(monkeypatch: Any, llm: FakeLLM) -> None:
    """Make ``import vllm`` (and the submodules the engine imports) give this stand-in."""
    root = types.ModuleType("vllm")
    root.LLM, root.SamplingParams = llm, SamplingParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = TokensPrompt
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    for name, module in {
        "vllm": root,
        "vllm.inputs": inputs,
        "vllm.lora": lora,
        "vllm.lora.request": request,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
