"""The opponent pool in bounded memory: every snapshot on disk, at most ``resident`` in the engine.

A snapshot enters the engine when it is taken (a copy of the live adapter, also saved) and
whenever a game draws it; past ``resident`` snapshots the least recently used one leaves the
engine (it stays on disk, ``folder / name``, and is loaded again when drawn again). An iteration
whose games draw more distinct snapshots than that is played in consecutive waves of games
(:func:`waves`); the records are the same, as a game's sampling seeds depend on its index in the
batch only.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from detente.lm.engine import Engine


def waves(snapshots: Sequence[str | None], capacity: int) -> list[range]:
    """The games cut into the fewest contiguous waves in which at most ``capacity`` distinct
    snapshots play; ``snapshots[i]`` is game i's (None: no snapshot plays in it).

    Greedy: a wave grows until the next game would bring a snapshot number ``capacity + 1``;
    a prefix that fits is never cut, so no contiguous cover has fewer pieces.
    """
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    out: list[range] = []
    start, playing = 0, set()
    for i, name in enumerate(snapshots):
        if name is not None and name not in playing and len(playing) == capacity:
            out.append(range(start, i))
            start, playing = i, set()
        if name is not None:
            playing.add(name)
    if start < len(snapshots):
        out.append(range(start, len(snapshots)))
    return out


class ResidentPool:
    """Which pool snapshots the engine holds, least recently used first; at most ``capacity``."""

    def __init__(
        self, engine: Engine, folder: Path, capacity: int, resident: Sequence[str] = ()
    ) -> None:
        """``resident``: snapshots the engine already holds (e.g. an engine passed to a resumed
        trainer), least recently used first."""
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.engine, self.folder, self.capacity = engine, folder, capacity
        self._order: list[str] = []
        for name in resident:
            self._touch(name)
        self._evict(keep=())

    @property
    def resident(self) -> list[str]:
        """The snapshots in the engine, least recently used first."""
        return list(self._order)

    def take(self, source: str, name: str, save: bool) -> None:
        """Snapshot adapter ``source`` as ``name``, the most recently used; saved to
        ``folder / name`` when ``save`` (data-parallel peers read the main learner's copy).
        Room is made first, so the engine never holds more than ``capacity`` snapshots."""
        self._evict(keep=(), room=1)
        self.engine.copy_adapter(source, name)
        if save:
            self.engine.save_adapter(name, self.folder / name)
        self._touch(name)

    def hold(self, names: Collection[str]) -> None:
        """Make ``names`` resident (at most ``capacity``): others leave, least recently used
        first, until they fit; the missing ones are loaded from ``folder``."""
        if len(names) > self.capacity:
            raise ValueError(f"{len(names)} snapshots at once exceed the capacity {self.capacity}")
        self._evict(keep=names, room=sum(n not in self._order for n in names))
        for name in sorted(names):
            if name not in self._order:
                self.engine.load_adapter(name, self.folder / name)
            self._touch(name)

    def _touch(self, name: str) -> None:
        if name in self._order:
            self._order.remove(name)
        self._order.append(name)

    def _evict(self, keep: Collection[str], room: int = 0) -> None:
        """Delete least recently used snapshots outside ``keep`` until ``room`` more fit."""
        for name in [n for n in self._order if n not in keep]:
            if len(self._order) + room <= self.capacity:
                return
            self.engine.delete_adapter(name)
            self._order.remove(name)
