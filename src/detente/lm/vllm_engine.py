"""The vLLM engine (GPU; ``pip install 'detente[vllm]'``): the rollout side of the engine interface.

Checked against the source of vLLM 0.33.0 (the version the extra pins), call by call.

Sessions work as in :class:`~detente.lm.engine.Engine`: the new tokens of each turn come from
the chat template delta (:func:`~detente.lm.sessions.plan_turns`) and vLLM is given the
session's whole token sequence (``TokensPrompt``), so the model sees exactly the tokens it
sampled before; vLLM's prefix cache stands in for our KV cache. Each request carries its
adapter as a ``LoRARequest``, its seed (vLLM's per-request generator) and ``logprobs=0``: the
log-prob of the sampled token only, taken after temperature and top-p
(``logprobs_mode="processed_logprobs"``), i.e. of the distribution sampled from, as the loss's
truncated importance ratio π_θ / π_sampler expects. Sampling is seeded but not bitwise equal to
the transformers engine: the ratio corrects for the difference.

Where the two engines would otherwise differ, this one follows the transformers engine:

* **dtype**: vLLM's LoRA kernels take float16 or bfloat16 only (``lora_shrink_op`` asserts it
  at start-up profiling), so the engine runs in one of those (bfloat16 by default) and refuses
  float32. A learner in the same dtype (``model.dtype=bfloat16`` on CUDA) computes alike.
* **stop tokens**: vLLM adds the model's generation-config EOS ids to a request's stop set
  (for Qwen2.5 ``<|endoftext|>`` besides ``<|im_end|>``), the transformers engine stops at
  :attr:`ChatFormat.stop_ids <detente.lm.chat.ChatFormat.stop_ids>` only: requests carry
  ``ignore_eos=True`` and those ids as ``stop_token_ids``, so both stop at the same tokens.
* **temperature 0**: vLLM decodes greedily and reports log p(argmax) of the unscaled
  distribution (< 0); the transformers engine reports 0, the log-prob of the point mass that was
  "sampled". This engine reports 0 too.
* **LoRA rank**: vLLM allocates LoRA slots of a rank in {1, 8, 16, 32, 64, 128, 256, 320, 512}
  (``MaxLoRARanks``); ``max_lora_rank`` is rounded up to the smallest of them ≥ r.

**Determinism.** A request's seed fixes its draws, but vLLM's logits depend on the shape of the
batch the request was scheduled in (kernels split work differently), so the same seed gives the
same reply only in the same batch composition, unless batch invariance is on
(``batch_invariant=True``, i.e. ``VLLM_BATCH_INVARIANT=1`` for the engine process; slower). Only
with it does "same seed, same results" hold for vLLM rollouts.

Every ``put_adapter`` writes the weights to a fresh directory under a fresh LoRA id (and name
``NAME@ID``), and the old id is removed from vLLM: no request can hit a cached copy of older
weights, in vLLM's LoRA slots or its prefix cache (keyed by LoRA id). vLLM keeps at most
``max_cpu_loras`` adapters in its CPU cache (least recently used out, reloaded from disk when
used again): the engine holds at most that many and says so when asked for more (size it for
the opponent pool's resident snapshots). ``sleep`` (with ``sleep_mode``) offloads the weights
to CPU memory and frees the KV cache while a learner trains on the same GPU; ``wake`` brings
them back.

**Placement.** ``device="cuda:K"`` runs vLLM's engine process on this process's GPU K (its
``CUDA_VISIBLE_DEVICES`` is narrowed to that GPU while the engine starts): data-parallel
learners under ``torchrun`` each get their own GPU (vLLM alone would take GPU 0 in every rank).

Format-constrained replies are not supported (``supports_constrained`` is False): the rollout
then falls back, after its free re-samples, to the declared default move, flagged invalid
(SPEC §1.5 asks for a constrained sample only where the backend supports it).

Not run on a GPU in this repository's CI: ``tests/lm/test_vllm_engine.py`` runs where vLLM and
CUDA are present and is skipped, with the reason, elsewhere; ``tests/lm/test_vllm_calls.py``
runs this module on the CPU against a stand-in of vLLM's API that enforces the limits above.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from peft import LoraConfig
from transformers import AutoTokenizer

from detente.environ import environment
from detente.lm.adapters import write_adapter
from detente.lm.chat import ChatFormat
from detente.lm.models import registered_models
from detente.lm.sessions import Session, finish_turn, plan_turns, reply_text
from detente.lm.types import AdapterSnapshot, GenerationRequest, GenerationResult

INSTALL = "pip install 'detente[vllm]' (on a machine with a CUDA GPU)"
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm.config.lora.MaxLoRARanks (0.33.0)
DTYPES = ("bfloat16", "float16")  # what vLLM's LoRA kernels take
GREEDY_BELOW = 1e-5  # vllm.sampling_params._SAMPLING_EPS: greedy decoding below it


def lora_rank_slot(r: int) -> int:
    """vLLM's ``max_lora_rank`` for adapters of rank ``r``: the smallest allowed value ≥ r."""
    for slot in LORA_RANKS:
        if slot >= r:
            return slot
    raise ValueError(f"LoRA rank {r} exceeds vLLM's largest, {LORA_RANKS[-1]}")


def vllm_dtype(dtype: Any) -> str:
    """``dtype`` (a name or a torch dtype) as vLLM's name for it; float16 or bfloat16 only."""
    name = str(dtype).removeprefix("torch.")
    name = {"bf16": "bfloat16", "fp16": "float16", "half": "float16"}.get(name, name)
    if name not in DTYPES:
        raise ValueError(
            f"the vLLM engine runs in bfloat16 or float16, not {dtype!r}: vLLM's LoRA kernels "
            "take no other dtype (use model.dtype=bfloat16)"
        )
    return name


def visible_devices(device: str | None, visible: str | None) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` for an engine process that should run on this process's
    ``device`` (``cuda:K``), given this process's own setting (None: every GPU visible);
    None to leave it as it is (``cuda``, ``cuda:0`` of an unrestricted view, or no device)."""
    if device is None or device == "cuda":
        return None
    kind, _, index = device.partition(":")
    if kind != "cuda" or not index.isdigit():
        raise ValueError(f"the vLLM engine runs on a CUDA device, not {device!r}")
    k = int(index)
    if visible is None:
        return None if k == 0 else str(k)
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if k >= len(ids):
        raise ValueError(f"{device} is not visible (CUDA_VISIBLE_DEVICES={visible!r})")
    return ids[k]


class VLLMEngine:
    """vLLM generation with LoRA adapters synced from a trainer (see the module docstring)."""

    supports_constrained = False

    def __init__(
        self,
        model: str,
        max_lora_rank: int = 32,
        max_loras: int = 8,
        gpu_memory: float = 0.5,
        sleep_mode: bool = True,
        dtype: Any = "bfloat16",
        max_cpu_loras: int | None = None,
        batch_invariant: bool = False,
        device: str | None = None,
        **llm_options: Any,
    ) -> None:
        """``model``: a local Hugging Face model directory or a hub id in the local cache;
        ``max_lora_rank``: the largest adapter rank served (rounded up to vLLM's next slot);
        ``max_loras``: adapters in one batch; ``max_cpu_loras``: adapters held (default
        ``max_loras``); ``batch_invariant``: replies independent of batch composition;
        ``device``: ``cuda:K`` of this process (default: vLLM's choice, GPU 0 of the visible
        ones); ``llm_options`` go to ``vllm.LLM`` as they are (e.g. ``max_model_len``)."""
        if model in registered_models():
            raise ValueError(
                f"{model!r} is built by detente for the transformers engine; vLLM loads a model "
                "directory or a hub id (e.g. Qwen/Qwen2.5-7B-Instruct)"
            )
        dtype = vllm_dtype(dtype)
        variables = {"VLLM_BATCH_INVARIANT": "1"} if batch_invariant else {}
        devices = visible_devices(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
        if devices is not None:
            if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") == "0":
                raise ValueError(
                    f"device={device!r} needs vLLM's engine in its own process "
                    "(VLLM_ENABLE_V1_MULTIPROCESSING=0 runs it here, on GPU 0)"
                )
            variables["CUDA_VISIBLE_DEVICES"] = devices
        try:
            from vllm import LLM
        except ImportError as error:
            raise ImportError(f"the vLLM engine needs vLLM: {INSTALL}") from error
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.chat = ChatFormat(self.tokenizer)
        self.max_cpu_loras = max(max_cpu_loras or max_loras, max_loras)
        self.batch_invariant = batch_invariant
        with environment(variables):  # the engine process starts in here
            self.llm = LLM(
                model=model,
                dtype=dtype,
                enable_lora=True,
                max_lora_rank=lora_rank_slot(max_lora_rank),
                max_loras=max_loras,
                max_cpu_loras=self.max_cpu_loras,
                gpu_memory_utilization=gpu_memory,
                enable_sleep_mode=sleep_mode,
                enable_prefix_caching=True,
                logprobs_mode="processed_logprobs",
                **llm_options,
            )
        self.dtype = dtype
        self.sleep_mode = sleep_mode
        self.asleep = False
        self._folder = Path(tempfile.mkdtemp(prefix="detente-vllm-lora-"))
        weakref.finalize(self, shutil.rmtree, self._folder, True)
        self._ids = itertools.count(1)
        self._loras: dict[str, Any] = {}  # adapter name -> its current vllm LoRARequest
        self._sessions: dict[str, Session] = {}

    # ---- adapters -------------------------------------------------------------------------

    def adapter_names(self) -> list[str]:
        return list(self._loras)

    def lora_id(self, name: str) -> int:
        """The vLLM LoRA id of ``name``'s current weights (a new one at every put)."""
        return int(self._loras[name].lora_int_id)

    def put_adapter(self, name: str, snapshot: AdapterSnapshot) -> None:
        """Write ``snapshot`` to a fresh folder under a fresh LoRA id; retire the old id."""
        from vllm.lora.request import LoRARequest

        if name not in self._loras and len(self._loras) >= self.max_cpu_loras:
            raise ValueError(
                f"adapter {name!r} would be the {len(self._loras) + 1}th; vLLM holds "
                f"max_cpu_loras={self.max_cpu_loras} (raise it, e.g. for the opponent pool)"
            )
        lora_id = next(self._ids)
        path = self._folder / str(lora_id)
        write_adapter(LoraConfig(**snapshot.config), snapshot.weights, path)
        old = self._loras.get(name)
        self._loras[name] = LoRARequest(f"{name}@{lora_id}", lora_id, str(path))
        if old is not None:
            self._retire(old)

    def delete_adapter(self, name: str) -> None:
        if name not in self._loras:
            raise KeyError(f"no adapter named {name!r} (have: {self.adapter_names()})")
        self._retire(self._loras.pop(name))

    def _retire(self, lora: Any) -> None:
        self.llm.llm_engine.remove_lora(lora.lora_int_id)  # False if it was never loaded
        shutil.rmtree(lora.lora_path, ignore_errors=True)

    # ---- memory ---------------------------------------------------------------------------

    def sleep(self) -> None:
        """With ``sleep_mode``: weights to CPU memory, KV and prefix caches freed."""
        if self.sleep_mode and not self.asleep:
            self.llm.reset_prefix_cache()
            self.llm.sleep(level=1)
            self.asleep = True

    def wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    # ---- generation -----------------------------------------------------------------------

    def end_sessions(self, session_ids: Sequence[str]) -> None:
        for session_id in session_ids:
            self._sessions.pop(session_id, None)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One batch: each request with its own adapter, seed and sampling parameters."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if not requests:
            return []
        if len({r.session_id for r in requests}) != len(requests):
            raise ValueError("a session appears twice in one batch")
        for request in requests:
            if request.allowed_replies is not None:
                raise ValueError("the vLLM engine does not sample format-constrained replies")
            if request.adapter is not None and request.adapter not in self._loras:
                raise KeyError(
                    f"no adapter named {request.adapter!r} (have: {self.adapter_names()})"
                )
        self.wake()
        sessions = [self._sessions.get(r.session_id) for r in requests]
        turns = plan_turns(sessions, requests, self.chat)
        stops = sorted(self.chat.stop_ids)
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=turn.ids) for turn in turns],
            [
                SamplingParams(
                    temperature=r.sampling.temperature,
                    top_p=r.sampling.top_p,
                    max_tokens=r.sampling.max_new_tokens,
                    seed=r.seed,
                    logprobs=0,
                    stop_token_ids=stops,
                    ignore_eos=True,  # stop at ``stops`` only, not at generation-config EOS ids
                )
                for r in requests
            ],
            lora_request=[self._loras[r.adapter] if r.adapter else None for r in requests],
            use_tqdm=False,
        )
        results = []
        for request, turn, output in zip(requests, turns, outputs, strict=True):
            sample = output.outputs[0]
            tokens = list(sample.token_ids)
            if request.sampling.temperature < GREEDY_BELOW:  # the point mass, as Engine reports
                logprobs = [0.0] * len(tokens)
            else:
                logprobs = [
                    float(step[t].logprob)
                    for step, t in zip(sample.logprobs, tokens, strict=True)
                ]
            finished = bool(tokens) and tokens[-1] in self.chat.stop_ids
            text = reply_text(self.chat, tokens, finished)
            session, result = finish_turn(request, turn, tokens, logprobs, finished, text)
            self._sessions[request.session_id] = session
            results.append(result)
        return results
