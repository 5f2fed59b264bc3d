"""Replicas in this process: adapter sync by name and version, shards equal to one process."""

from __future__ import annotations

import pytest
import torch

from detente.config import load_config
from detente.rollout.replica import Replica, ReplicaSpec
from detente.rollout.runner import Match
from detente.rollout.shards import shard_ranges
from detente.rollout.sync import AdapterPublisher, portable
from detente.train.trainer import LIVE, Trainer

torch.set_num_threads(1)


def test_shard_ranges_are_contiguous_and_balanced():
    assert shard_ranges(7, 3) == [range(0, 3), range(3, 5), range(5, 7)]
    assert shard_ranges(1, 2) == [range(0, 1), range(1, 1)]
    with pytest.raises(ValueError):
        shard_ranges(3, 0)


def test_replica_shards_equal_the_trainers_rollout_and_sync_by_version(
    tmp_path, tiny_overrides, assert_same_records
):
    config = load_config("ipd-adalign-tiny", [*tiny_overrides, "pool.every=1", "pool.p_past=1.0"])
    trainer = Trainer.create(config, tmp_path / "run")
    trainer.iteration(0)  # one step on the live adapter and a pool snapshot
    spec = ReplicaSpec(
        "hf",
        config.model.name,
        "cpu",
        trainer.batcher.sampling,
        trainer.protocol,
        config.invalid,
        config.model.lora.r,
        config.runtime.vllm,
    )
    replica = Replica(spec)
    publisher = AdapterPublisher(trainer.engine)
    manifest = publisher.manifest()
    assert manifest == {LIVE: 0, "pool-000001": 0}

    matches = trainer.matches(1)  # games are played in place: fresh ones for each rollout
    seed = 1234
    records = []
    for shard in shard_ranges(len(matches), 3):
        updates = publisher.updates(replica.held, manifest)
        payload = portable(matches[shard.start : shard.stop], trainer.batcher)
        records += replica.run(manifest, payload, seed, shard.start, *updates)
    assert {s.agent for r in records for s in r.seats} == {"live", "pool-000001"}
    assert_same_records(records, trainer.rollouts.play(trainer.matches(1), seed))

    # The live adapter trains between rollouts: a new version; the frozen snapshot keeps its.
    trainer.update(records)
    manifest = publisher.manifest()
    assert manifest == {LIVE: 1, "pool-000001": 0}
    updates = publisher.updates(replica.held, manifest)
    assert [(u.name, u.version) for u in updates] == [(LIVE, 1)]
    payload = portable(trainer.matches(1), trainer.batcher)
    assert_same_records(
        replica.run(manifest, payload, seed, 0, *updates),
        trainer.rollouts.play(trainer.matches(1), seed),
    )
    with pytest.raises(RuntimeError, match="holds adapters"):
        replica.run({LIVE: 2, "pool-000001": 0}, payload, seed, 0)  # the update never came
    trainer.engine.delete_adapter("pool-000001")
    manifest = publisher.manifest()
    replica.run(manifest, [], seed, 0, *publisher.updates(replica.held, manifest))
    assert replica.engine.adapter_names() == [LIVE]


def test_seats_on_another_engine_are_refused(tmp_path, tiny_overrides):
    config = load_config("ipd-naive-tiny", tiny_overrides)
    trainer = Trainer.create(config, tmp_path / "run")
    from detente.policies.lm import LMBatcher, LMPolicy

    stranger = LMPolicy(LMBatcher(trainer.engine), None, "stranger")
    (match,) = trainer.matches(0)[:1]
    with pytest.raises(ValueError, match="another engine"):
        portable([Match(match.game, (stranger, stranger), "g")], trainer.batcher)
