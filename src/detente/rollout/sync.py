"""What the driver sends a replica: its adapters by name and version, and portable matches.

Before each rollout the driver publishes a *manifest*, the version of every adapter of its
engine: a trainable adapter (the live policy) gets a new version at every rollout, since an
optimizer step has changed it since the last one; a frozen one (pool snapshots, ``run:``
opponents) keeps its first. A replica receives the snapshots of the versions it lacks.

Matches travel as :class:`PortableMatch`: seats played by an adapter of the driver's engine become
:class:`AdapterSeat` (rebuilt on the replica's engine); other policies (bots) are sent as they
are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from detente.games.base import Game
from detente.lm.types import AdapterSnapshot
from detente.policies.base import Policy
from detente.policies.lm import LMBatcher, LMPolicy
from detente.rollout.runner import Match

if TYPE_CHECKING:
    from detente.lm.engine import Engine

Manifest = dict[str, int]  # adapter name -> version


@dataclass(frozen=True)
class AdapterUpdate:
    """One version of one adapter, as shipped to replicas."""

    name: str
    version: int
    snapshot: AdapterSnapshot


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


@dataclass(frozen=True)
class AdapterSeat:
    """A seat played by adapter ``adapter`` (None: the base model) of the driver's engine."""

    adapter: str | None
    name: str


@dataclass
class PortableMatch:
    """A :class:`Match` whose language-model seats name adapters instead of engines."""

    game: Game
    seats: tuple[Policy | AdapterSeat, ...]
    game_id: str
    group: int
    learners: tuple[bool, ...]


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
        PortableMatch(m.game, tuple(seat(p) for p in m.policies), m.game_id, m.group, m.learners)
        for m in matches
    ]
