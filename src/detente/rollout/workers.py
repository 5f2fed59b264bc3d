"""Rollout workers: an iteration's games split among Ray actors, each an engine replica.

``runtime.workers=N`` cuts each iteration's matches into N contiguous shards by index; actor k
plays shard k on its own engine (:class:`~detente.rollout.replica.Replica`) after syncing the
adapters it lacks (snapshots put once in Ray's object store per version, shared by all actors).
Seeds depend on each game's index in the whole batch, so the records are those of one process,
whatever N. An actor that dies (``RayActorError``) is replaced by a fresh one, which receives
every adapter and replays the shard with the same seeds: the iteration goes on, with the same
records. The learner stays in the driver.

"The same records" holds for the transformers engine; vLLM's replies also depend on the batch
a request is scheduled in, so for vLLM workers it holds only with
``runtime.vllm.batch_invariant``. Each worker gets ``runtime.gpus_per_worker`` GPUs from Ray;
replicas meant for a GPU with 0 are refused here, before Ray starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from detente.policies.lm import LMBatcher
from detente.rollout.records import GameRecord
from detente.rollout.replica import Replica, ReplicaSpec
from detente.rollout.runner import Match
from detente.rollout.shards import shard_ranges
from detente.rollout.sync import AdapterPublisher, Manifest, portable

if TYPE_CHECKING:
    from detente.lm.engine import Engine

# Passed on to actors when this process starts Ray (a running cluster keeps its own).
_ENV = ("DETENTE_CACHE", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class Placement(Protocol):
    """What the workers read of the run's ``runtime`` section (declared there)."""

    workers: int
    ray_address: str | None
    cpus_per_worker: float
    gpus_per_worker: float
    max_replays: int


class RolloutWorkers:
    """A pool of Ray actors playing shards of each iteration (see the module docstring)."""

    def __init__(
        self, spec: ReplicaSpec, engine: Engine, batcher: LMBatcher, runtime: Placement
    ) -> None:
        if spec.device.startswith("cuda") and not runtime.gpus_per_worker:
            raise ValueError(
                f"runtime.gpus_per_worker=0 gives the rollout workers no GPU while they should "
                f"run on {spec.device}: set it (1 per worker, or a fraction to share one)"
            )
        import ray

        if not ray.is_initialized():
            env = {k: os.environ[k] for k in _ENV if k in os.environ}
            ray.init(
                address=runtime.ray_address,
                include_dashboard=False,
                runtime_env={"env_vars": env},
            )
        self.spec = spec
        self.publisher = AdapterPublisher(engine)
        self.batcher = batcher
        self.max_replays = runtime.max_replays
        self._actor = ray.remote(
            num_cpus=runtime.cpus_per_worker, num_gpus=runtime.gpus_per_worker
        )(Replica)
        self.actors: list[Any] = [self._actor.remote(spec) for _ in range(runtime.workers)]
        self.held: list[Manifest] = [{} for _ in self.actors]
        self.restarts = 0  # actors replaced after dying

    def play(self, matches: Sequence[Match], seed: int, first_index: int = 0) -> list[GameRecord]:
        """Play ``matches`` (a batch starting at ``first_index``) on the actors, one contiguous
        shard each; records in the order of ``matches``."""
        import ray
        from ray.exceptions import RayActorError

        manifest = self.publisher.manifest()
        refs: dict[str, Any] = {}  # adapter name -> ObjectRef of its current update

        def submit(k: int) -> Any:
            updates = []
            for update in self.publisher.updates(self.held[k], manifest):
                if update.name not in refs:
                    refs[update.name] = ray.put(update)
                updates.append(refs[update.name])
            shard = shards[k]
            payload = portable(matches[shard.start : shard.stop], self.batcher)
            return self.actors[k].run.remote(
                manifest, payload, seed, first_index + shard.start, *updates
            )

        shards = shard_ranges(len(matches), len(self.actors))
        results: list[list[GameRecord]] = [[] for _ in shards]
        replays = [0] * len(shards)
        pending = {submit(k): k for k, shard in enumerate(shards) if len(shard)}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ref)
            try:
                results[k] = ray.get(ref)
                self.held[k] = dict(manifest)
            except RayActorError as error:
                replays[k] += 1
                if replays[k] > self.max_replays:
                    raise RuntimeError(
                        f"rollout worker {k} died {replays[k]} times in one iteration"
                    ) from error
                self._replace(k)
                pending[submit(k)] = k
        return [record for shard in results for record in shard]

    def _replace(self, k: int) -> None:
        """A fresh actor in place of actor ``k`` (which is killed if it still lingers)."""
        import ray

        ray.kill(self.actors[k], no_restart=True)
        self.actors[k] = self._actor.remote(self.spec)
        self.held[k] = {}
        self.restarts += 1

    def close(self) -> None:
        """Stop the actors (the Ray cluster stays up)."""
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
