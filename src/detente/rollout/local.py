"""Rollouts in this process: on the trainer's own engine, or on a replica beside it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from detente.policies.lm import LMBatcher
from detente.protocol.base import Protocol as TextProtocol
from detente.rollout.records import GameRecord
from detente.rollout.replica import Replica, ReplicaSpec
from detente.rollout.runner import InvalidReplyConfig, Match, play
from detente.rollout.sync import AdapterPublisher, portable

if TYPE_CHECKING:
    from detente.lm.engine import Engine


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
