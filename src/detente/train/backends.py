"""The rollout backend a run asks for: in this process, a replica beside it, or Ray workers.

Above :mod:`detente.rollout.local` and :mod:`detente.rollout.workers`: it decides where the
replicas compute and how many adapters they hold, and builds the backend ``config.runtime``
names around the trainer's engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from detente.policies.lm import LMBatcher
from detente.protocol.base import Protocol as TextProtocol
from detente.rollout.engines import rollout_engine
from detente.rollout.local import InProcess, LocalReplica
from detente.rollout.records import GameRecord
from detente.rollout.replica import ReplicaSpec
from detente.rollout.runner import Match
from detente.rollout.workers import RolloutWorkers

if TYPE_CHECKING:
    from detente.config import RunConfig
    from detente.lm.engine import Engine


class Rollouts(Protocol):
    """Plays a batch of matches (a shard starting at ``first_index`` of the iteration's batch)."""

    def play(
        self, matches: Sequence[Match], seed: int, first_index: int = 0
    ) -> list[GameRecord]: ...

    def close(self) -> None: ...


def replica_device(learner: torch.device, workers: int) -> str:
    """Where a replica computes: beside the learner (``workers`` 0) on the learner's own device
    (``cuda:K``, this rank's GPU); in a Ray worker on the GPU Ray gave it (``cuda``) or the CPU.
    Resolved in the driver, so that a worker never falls back to the CPU on its own."""
    if learner.type != "cuda":
        return "cpu"
    if workers or learner.index is None:
        return "cuda"
    return f"cuda:{learner.index}"


def adapter_capacity(config: RunConfig) -> int:
    """Adapters a replica may hold at once: the live one, a ``run:`` opponent, and the opponent
    pool's resident snapshots; at least the adapters of one vLLM batch."""
    pool = config.pool.resident if config.pool.enabled else 0
    return max(2 + pool, config.runtime.vllm.max_loras)


def make_rollouts(
    config: RunConfig, engine: Engine, batcher: LMBatcher, protocol: TextProtocol
) -> Rollouts:
    """The rollout backend ``config.runtime`` asks for, around the trainer's engine: with no
    workers and an engine of the trainer's kind, the trainer's engine itself."""
    runtime = config.runtime
    if runtime.workers == 0 and rollout_engine(runtime.engine).trainer_engine:
        return InProcess(protocol, config.invalid)
    spec = ReplicaSpec(
        engine=runtime.engine,
        model=config.model.name,
        device=replica_device(engine.device, runtime.workers),
        sampling=batcher.sampling,
        protocol=protocol,
        invalid=config.invalid,
        lora_rank=config.model.lora.r,
        vllm=runtime.vllm,
        dtype=config.model.dtype,
        threads=max(1, int(runtime.cpus_per_worker)) if runtime.workers else 0,
        max_adapters=adapter_capacity(config),
    )
    if runtime.workers == 0:
        return LocalReplica(spec, engine, batcher)
    return RolloutWorkers(spec, engine, batcher, runtime)
