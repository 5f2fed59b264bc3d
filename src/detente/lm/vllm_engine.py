"""The vLLM engine (GPU; ``pip install 'detente[vllm]'``): the rollout side of the engine interface.

Sessions work as in :class:`~detente.lm.engine.Engine`: the new tokens of each turn come from
the chat template delta (:func:`~detente.lm.sessions.plan_turns`) and vLLM is given the
session's whole token sequence (``TokensPrompt``), so the model sees exactly the tokens it
sampled before; vLLM's prefix cache stands in for our KV cache. Each request carries its
adapter as a ``LoRARequest``, its seed (vLLM's per-request generator) and ``logprobs=0``: the
log-prob of the sampled token only, taken after temperature and top-p
(``logprobs_mode="processed_logprobs"``), i.e. of the distribution sampled from, as the loss's
truncated importance ratio π_θ / π_sampler expects. Sampling is seeded but not bitwise equal to
the transformers engine: the ratio corrects for the difference.

Every ``put_adapter`` writes the weights to a fresh directory under a fresh LoRA id (and name
``NAME@ID``), and the old id is removed from vLLM: no request can hit a cached copy of older
weights, in vLLM's LoRA slots or its prefix cache (keyed by LoRA id). ``sleep`` (with
``sleep_mode``) offloads the weights to CPU memory and frees the KV cache while a learner trains
on the same GPU; ``wake`` brings them back.

Format-constrained replies are not supported (``supports_constrained`` is False): the rollout
then falls back, after its free re-samples, to the declared default move, flagged invalid
(SPEC §1.5 asks for a constrained sample only where the backend supports it).

Not tested on a GPU in this repository's CI: see ``tests/lm/test_vllm_engine.py``, which runs
where vLLM and CUDA are present and is skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from peft import LoraConfig
from transformers import AutoTokenizer

from detente.lm.adapters import write_adapter
from detente.lm.chat import ChatFormat
from detente.lm.models import registered_models
from detente.lm.sessions import Session, finish_turn, plan_turns, reply_text
from detente.lm.types import AdapterSnapshot, GenerationRequest, GenerationResult

INSTALL = "pip install 'detente[vllm]' (on a machine with a CUDA GPU)"


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
        **llm_options: Any,
    ) -> None:
        """``model``: a local Hugging Face model directory or a hub id in the local cache;
        ``llm_options`` go to ``vllm.LLM`` as they are (e.g. ``dtype``, ``max_model_len``)."""
        try:
            from vllm import LLM
        except ImportError as error:
            raise ImportError(f"the vLLM engine needs vLLM: {INSTALL}") from error
        if model in registered_models():
            raise ValueError(
                f"{model!r} is built by detente for the transformers engine; vLLM loads a model "
                "directory or a hub id (e.g. Qwen/Qwen2.5-7B-Instruct)"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.chat = ChatFormat(self.tokenizer)
        self.llm = LLM(
            model=model,
            enable_lora=True,
            max_lora_rank=max_lora_rank,
            max_loras=max_loras,
            gpu_memory_utilization=gpu_memory,
            enable_sleep_mode=sleep_mode,
            enable_prefix_caching=True,
            logprobs_mode="processed_logprobs",
            **llm_options,
        )
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
            logprobs = [
                float(step[t].logprob) for step, t in zip(sample.logprobs, tokens, strict=True)
            ]
            finished = bool(tokens) and tokens[-1] in self.chat.stop_ids
            text = reply_text(self.chat, tokens, finished)
            session, result = finish_turn(request, turn, tokens, logprobs, finished, text)
            self._sessions[request.session_id] = session
            results.append(result)
        return results
