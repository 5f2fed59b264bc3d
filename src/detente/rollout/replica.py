"""Engine replicas: generation engines of their own that play shards with the driver's adapters.

A *replica* is a generation engine of its own (of a kind in :mod:`detente.rollout.engines`) in
this process (:mod:`detente.rollout.local`) or in a Ray actor (:mod:`detente.rollout.workers`).
Before each shard it receives the adapter versions it lacks (:mod:`detente.rollout.sync`), drops
adapters the driver no longer has, and refuses to play unless it then holds exactly the
driver's manifest. Request seeds depend on each game's index in the whole batch
(``first_index``), so a shard played on a replica gives the records it would give in one
process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from detente.games.base import Kind
from detente.lm.models import resolve_device
from detente.lm.types import SamplingParams
from detente.policies.base import Policy
from detente.policies.lm import LMBatcher, LMPolicy
from detente.protocol.base import Protocol as TextProtocol
from detente.rollout.engines import EngineKind, rollout_engine
from detente.rollout.records import GameRecord
from detente.rollout.runner import InvalidReplyConfig, Match, play
from detente.rollout.sync import AdapterSeat, AdapterUpdate, Manifest, PortableMatch


class VllmSettings(Protocol):
    """What a vLLM replica reads of the run's ``runtime.vllm`` section (declared there)."""

    gpu_memory: float
    max_loras: int
    sleep: bool
    batch_invariant: bool


@dataclass(frozen=True)
class ReplicaSpec:
    """What a replica needs to build its engine and play like the trainer."""

    engine: EngineKind  # or its value ("hf", "vllm")
    model: str
    device: str
    sampling: dict[Kind, SamplingParams]
    protocol: TextProtocol
    invalid: InvalidReplyConfig
    lora_rank: int
    vllm: VllmSettings
    dtype: str = "float32"  # the configured model.dtype (see lm.models.precision)
    threads: int = 0  # torch CPU threads (0: leave as is)
    max_adapters: int = 8  # adapters the replica may hold at once (vLLM's max_cpu_loras)


class Replica:
    """An engine replica that plays shards of iterations with adapters synced from a driver."""

    def __init__(self, spec: ReplicaSpec) -> None:
        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.spec = spec
        self.kind = rollout_engine(spec.engine)
        self.engine = self.kind.build(spec, _device(spec))
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
        ``first_index`` in the iteration's batch); sleeps afterwards when its kind does."""
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
                    tuple(resolve(seat) for seat in m.seats),
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
            if self.kind.sleeps:
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


def _device(spec: ReplicaSpec) -> str:
    """The replica's device, resolved; a GPU it should have but does not see is an error."""
    device = resolve_device(spec.device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"this rollout replica should run on {device} but sees no GPU (Ray gives a worker "
            "GPUs only with runtime.gpus_per_worker > 0)"
        )
    return device
