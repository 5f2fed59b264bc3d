"""Rollouts on engine replicas: the learner's adapters copied by name and version.

A *replica* is a generation engine of its own (transformers or vLLM) in this process or in a Ray
actor (:mod:`detente.rollout.workers`). Before each rollout the driver publishes a *manifest*,
the version of every adapter of its engine: a trainable adapter (the live policy) gets a new
version at every rollout, since an optimizer step has changed it since the last one; a frozen one
(pool snapshots, ``run:`` opponents) keeps its first. A replica receives the snapshots of the
versions it lacks, drops adapters the driver no longer has, and refuses to play unless it then
holds exactly the manifest.

Matches travel as :class:`PortableMatch`: seats played by an adapter of the driver's engine become
:class:`AdapterSeat` (rebuilt on the replica's engine); other policies (bots) are sent as they
are. Request seeds depend on each game's index in the whole batch (``first_index``), so a shard
played on a replica gives the records it would give in one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from detente.games.base import Game, Kind
from detente.lm.models import load_engine, precision, resolve_device
from detente.lm.types import AdapterSnapshot, GenerationEngine, SamplingParams
from detente.policies.base import Policy
from detente.policies.lm import LMBatcher, LMPolicy
from detente.protocol.base import Protocol as TextProtocol
from detente.rollout.records import GameRecord
from detente.rollout.runner import InvalidReplyConfig, Match, play

if TYPE_CHECKING:
    from detente.config import RunConfig, VllmSection
    from detente.lm.engine import Engine

Manifest = dict[str, int]  # adapter name -> version


def shard_ranges(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into ``parts`` contiguous pieces whose sizes differ by at most one."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    size, extra = divmod(n, parts)
    bounds = [k * size + min(k, extra) for k in range(parts + 1)]
    return [range(bounds[k], bounds[k + 1]) for k in range(parts)]


@dataclass(frozen=True)
class AdapterUpdate:
    """One version of one adapter, as shipped to replicas."""

    name: str
    version: int
    snapshot: AdapterSnapshot


@dataclass(frozen=True)
class AdapterSeat:
    """A seat played by adapter ``adapter`` (None: the base model) of the driver's engine."""

    adapter: str | None
    name: str


@dataclass
class PortableMatch:
    """A :class:`Match` whose language-model seats name adapters instead of engines."""

    game: Game
    seats: tuple[Policy | AdapterSeat, Policy | AdapterSeat]
    game_id: str
    group: int
    learners: tuple[bool, bool]


def portable(matches: Sequence[Match], batcher: LMBatcher) -> list[PortableMatch]:
    """``matches`` with every ``LMPolicy`` on ``batcher``'s engine turned into an ``AdapterSeat``."""

    def seat(policy: Policy) -> Policy | AdapterSeat:
        if isinstance(policy, LMPolicy):
            if policy.batcher is not batcher:
                raise ValueError(
                    f"{policy.name} runs on another engine than the trainer's; rollout replicas "
                    "serve the trainer's base model only"
                )
            return AdapterSeat(policy.adapter, policy.name)
        return policy

    return [
        PortableMatch(
            m.game, (seat(m.policies[0]), seat(m.policies[1])), m.game_id, m.group, m.learners
        )
        for m in matches
    ]


@dataclass(frozen=True)
class ReplicaSpec:
    """What a replica needs to build its engine and play like the trainer."""

    engine: str  # "hf" or "vllm"
    model: str
    device: str
    sampling: dict[Kind, SamplingParams]
    protocol: TextProtocol
    invalid: InvalidReplyConfig
    lora_rank: int
    vllm: VllmSection
    dtype: str = "float32"  # the configured model.dtype (see lm.models.precision)
    threads: int = 0  # torch CPU threads (0: leave as is)
    max_adapters: int = 8  # adapters the replica may hold at once (vLLM's max_cpu_loras)


class Replica:
    """An engine replica that plays shards of iterations with adapters synced from a driver."""

    def __init__(self, spec: ReplicaSpec) -> None:
        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.spec = spec
        self.engine = _engine(spec)
        self.batcher = LMBatcher.with_sampling(self.engine, spec.sampling)
        self.held: Manifest = {}

    def run(
        self,
        manifest: Manifest,
        matches: list[PortableMatch],
        seed: int,
        first_index: int,
        *updates: AdapterUpdate,
    ) -> list[GameRecord]:
        """Sync to ``manifest`` with ``updates``, then play ``matches`` (a shard starting at
        ``first_index`` in the iteration's batch); sleeps afterwards when configured to."""
        self.engine.wake()
        try:
            self._sync(manifest, updates)
            seats: dict[AdapterSeat, LMPolicy] = {}

            def resolve(seat: Policy | AdapterSeat) -> Policy:
                if isinstance(seat, AdapterSeat):
                    if seat not in seats:
                        seats[seat] = LMPolicy(self.batcher, seat.adapter, seat.name)
                    return seats[seat]
                return seat

            local = [
                Match(
                    m.game,
                    (resolve(m.seats[0]), resolve(m.seats[1])),
                    m.game_id,
                    m.group,
                    m.learners,
                )
                for m in matches
            ]
            with torch.no_grad():
                return play(
                    local, self.spec.protocol, self.spec.invalid, seed, first_index=first_index
                )
        finally:
            if self.spec.engine == "vllm" and self.spec.vllm.sleep:
                self.engine.sleep()

    def _sync(self, manifest: Manifest, updates: Sequence[AdapterUpdate]) -> None:
        for update in updates:
            self.engine.put_adapter(update.name, update.snapshot)
            self.held[update.name] = update.version
        for name in [n for n in self.held if n not in manifest]:
            self.engine.delete_adapter(name)
            del self.held[name]
        if self.held != manifest:
            raise RuntimeError(f"replica holds adapters {self.held}, the driver has {manifest}")


def _engine(spec: ReplicaSpec) -> GenerationEngine:
    device = resolve_device(spec.device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"this rollout replica should run on {device} but sees no GPU (Ray gives a worker "
            "GPUs only with runtime.gpus_per_worker > 0)"
        )
    if spec.engine == "vllm":
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
    return load_engine(spec.model, device=device, dtype=precision(device, spec.dtype).weights)


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


class AdapterPublisher:
    """The driver's side of the sync: versions and snapshots of its engine's adapters."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._versions: Manifest = {}
        self._updates: dict[str, AdapterUpdate] = {}

    def manifest(self) -> Manifest:
        """Every adapter's version now (call once per rollout): trainable adapters get a new
        one, frozen adapters keep theirs."""
        names = self.engine.adapter_names()
        self._versions = {n: v for n, v in self._versions.items() if n in names}
        for name in names:
            trainable = any(p.requires_grad for p in self.engine.parameters_of(name))
            if name not in self._versions or trainable:
                self._versions[name] = self._versions.get(name, -1) + 1
                self._updates.pop(name, None)
        return dict(self._versions)

    def updates(self, held: Manifest, manifest: Manifest) -> list[AdapterUpdate]:
        """The snapshots a replica holding ``held`` needs to hold ``manifest``."""
        return [self.update(name) for name, v in manifest.items() if held.get(name) != v]

    def update(self, name: str) -> AdapterUpdate:
        """The current version of ``name`` (snapshotted once per version)."""
        if name not in self._updates:
            snapshot = self.engine.snapshot_adapter(name)
            self._updates[name] = AdapterUpdate(name, self._versions[name], snapshot)
        return self._updates[name]


class Rollouts(Protocol):
    """Plays a batch of matches (a shard starting at ``first_index`` of the iteration's batch)."""

    def play(
        self, matches: Sequence[Match], seed: int, first_index: int = 0
    ) -> list[GameRecord]: ...

    def close(self) -> None: ...


@dataclass
class InProcess:
    """Rollouts on the trainer's own engine, in this process."""

    protocol: TextProtocol
    invalid: InvalidReplyConfig

    def play(self, matches: Sequence[Match], seed: int, first_index: int = 0) -> list[GameRecord]:
        with torch.no_grad():
            return play(matches, self.protocol, self.invalid, seed, first_index=first_index)

    def close(self) -> None:
        """Nothing to release."""


class LocalReplica:
    """Rollouts on a replica in this process (vLLM beside the learner on one GPU)."""

    def __init__(self, spec: ReplicaSpec, engine: Engine, batcher: LMBatcher) -> None:
        self.replica = Replica(spec)
        self.publisher = AdapterPublisher(engine)
        self.batcher = batcher

    def play(self, matches: Sequence[Match], seed: int, first_index: int = 0) -> list[GameRecord]:
        manifest = self.publisher.manifest()
        updates = self.publisher.updates(self.replica.held, manifest)
        shard = portable(matches, self.batcher)
        return self.replica.run(manifest, shard, seed, first_index, *updates)

    def close(self) -> None:
        """The replica goes with this object."""


def make_rollouts(
    config: RunConfig, engine: Engine, batcher: LMBatcher, protocol: TextProtocol
) -> Rollouts:
    """The rollout backend ``config.runtime`` asks for, around the trainer's engine."""
    runtime = config.runtime
    if runtime.workers == 0 and runtime.engine == "hf":
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
    from detente.rollout.workers import RolloutWorkers

    return RolloutWorkers(spec, engine, batcher, runtime)
