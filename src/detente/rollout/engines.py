"""Rollout engines by kind: what ``runtime.engine`` names, and how a replica builds each.

A kind maps to a :class:`RolloutEngine` in :data:`ENGINES`; code asks the entry (``build``,
``trainer_engine``, ``sleeps``) instead of comparing names. The engines' modules are imported
when one is built, so the config can name the kinds without loading torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from detente.suggest import did_you_mean

if TYPE_CHECKING:
    from detente.lm.types import GenerationEngine
    from detente.rollout.replica import ReplicaSpec


class EngineKind(StrEnum):
    """The values of ``runtime.engine``."""

    HF = "hf"  # transformers + peft (detente.lm.engine), the trainer's own kind
    VLLM = "vllm"  # vLLM (detente.lm.vllm_engine), GPU only


@dataclass(frozen=True)
class RolloutEngine:
    """How a replica builds an engine of one kind, and how the kind behaves there."""

    build: Callable[[ReplicaSpec, str], GenerationEngine]  # (spec, resolved device) -> engine
    trainer_engine: bool  # the trainer's engine is of this kind: without workers, play on it
    sleeps: bool  # released after each rollout, while the learner trains


def _transformers(spec: ReplicaSpec, device: str) -> GenerationEngine:
    from detente.lm.models import load_engine, precision

    return load_engine(spec.model, device=device, dtype=precision(device, spec.dtype).weights)


def _vllm(spec: ReplicaSpec, device: str) -> GenerationEngine:
    from detente.lm.vllm_engine import VLLMEngine

    return VLLMEngine(
        spec.model,
        max_lora_rank=spec.lora_rank,
        max_loras=spec.vllm.max_loras,
        gpu_memory=spec.vllm.gpu_memory,
        sleep_mode=spec.vllm.sleep,
        dtype=spec.dtype,  # bfloat16: the config refuses vLLM in float32
        max_cpu_loras=spec.max_adapters,
        batch_invariant=spec.vllm.batch_invariant,
        device=device if device.startswith("cuda:") else None,
    )


ENGINES: dict[EngineKind, RolloutEngine] = {
    EngineKind.HF: RolloutEngine(_transformers, trainer_engine=True, sleeps=False),
    # Sleeps as far as runtime.vllm.sleep lets it (the engine's sleep_mode).
    EngineKind.VLLM: RolloutEngine(_vllm, trainer_engine=False, sleeps=True),
}


def rollout_engine(kind: str) -> RolloutEngine:
    """The entry of ``kind`` (an :class:`EngineKind` or its value), or an error naming the kinds."""
    try:
        return ENGINES[EngineKind(kind)]
    except ValueError:
        known = [k.value for k in EngineKind]
        raise ValueError(
            f"unknown rollout engine {kind!r}{did_you_mean(str(kind), known)}; known: "
            + ", ".join(known)
        ) from None
