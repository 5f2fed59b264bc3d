"""Checkpoints of a run, written so that a crash mid-write never corrupts the last good one.

Layout under ``RUN_DIR/checkpoints``: ``iter-NNNNNN/`` holds the live adapter (peft format),
``optimizer.pt``, ``rng.pt`` (python, numpy and torch generator states), ``state.json``
(iteration, pool) and ``config.yaml`` (the config it was trained with, which a resume checks
the run's ``config.yaml`` against). A checkpoint is built in a temporary folder and renamed into
place; the ``latest`` file, replaced atomically afterwards, names the newest complete one.

One process at a time writes a run directory: :func:`lock_run` takes an exclusive ``flock`` on
``RUN_DIR/.lock`` (released by the kernel when the process dies, so a killed run resumes).
What a crash can leave behind (temporary folders and files) is removed by
:func:`remove_temporaries` once the lock is held.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None  # type: ignore[assignment]

import numpy as np
import torch

LATEST = "latest"
LOCK = ".lock"


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (exists, is locked, has nothing to resume)."""


@dataclass
class TrainState:
    """What the trainer needs besides weights to continue exactly."""

    iteration: int  # iterations completed
    pool: list[str] = field(default_factory=list)  # adapter names of past checkpoints


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def rng_states() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def checkpoint_dir(run_dir: Path, iteration: int) -> Path:
    return run_dir / "checkpoints" / f"iter-{iteration:06d}"


def save_checkpoint(
    run_dir: Path,
    state: TrainState,
    save_adapter: Callable[[Path], None],
    optimizer: torch.optim.Optimizer,
    keep: int = 2,
    config_text: str | None = None,
) -> Path:
    """Write checkpoint ``state.iteration``; ``save_adapter(folder)`` writes the live adapter,
    ``config_text`` (the run's config, dumped) goes beside it.

    Older checkpoints beyond the newest ``keep`` are removed after ``latest`` moved on.
    """
    final = checkpoint_dir(run_dir, state.iteration)
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_adapter(tmp / "adapter")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(rng_states(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(asdict(state)))
    if config_text is not None:
        (tmp / "config.yaml").write_text(config_text)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_text(run_dir / "checkpoints" / LATEST, final.name)
    existing = sorted(p for p in final.parent.glob("iter-*") if p.is_dir())
    for old in existing[:-keep]:
        shutil.rmtree(old)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    if not (folder / "state.json").is_file():
        raise RuntimeError(f"checkpoint {folder} named by {pointer} is incomplete")
    return folder


def load_state(folder: Path) -> TrainState:
    return TrainState(**json.loads((folder / "state.json").read_text()))


class RunLock:
    """This process's hold on a run directory; ``release`` (or the process's end) lets go."""

    _held: dict[Path, tuple[int, int]] = {}  # directory -> (descriptor, holders in this process)
    _guard = threading.Lock()

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir.resolve()
        self._released = False

    def release(self) -> None:
        with self._guard:
            if self._released or self.path not in self._held:
                return
            self._released = True
            fd, count = self._held.pop(self.path)
            if count > 1:
                self._held[self.path] = (fd, count - 1)
            else:
                os.close(fd)  # the flock goes with the descriptor


def lock_run(run_dir: Path) -> RunLock:
    """An exclusive lock on ``run_dir`` (which must exist), or ``RunDirError`` naming the live
    process holding it. Holders in this process share it (e.g. a trainer and its resumed
    copy in one test); another process is refused until this one releases or dies."""
    lock = RunLock(run_dir)
    with RunLock._guard:
        if lock.path in RunLock._held:
            fd, count = RunLock._held[lock.path]
            RunLock._held[lock.path] = (fd, count + 1)
            return lock
        fd = os.open(lock.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunDirError(
                    f"{run_dir} is in use by another live process (pid {holder}); one process "
                    "at a time trains a run directory"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        RunLock._held[lock.path] = (fd, 1)
    return lock


def remove_temporaries(run_dir: Path) -> list[Path]:
    """Remove what an interrupted write leaves (``.NAME.tmp`` files and folders of atomic
    writes, ``.pool-*`` folders of adapter saves, ``*.tmp`` transcripts); returns them. Call
    with the run's lock held, so that no writer is using them."""
    found = [
        *run_dir.glob(".*.tmp"),
        *(run_dir / "checkpoints").glob(".*"),
        *(run_dir / "pool").glob(".*"),
        *(run_dir / "transcripts").glob("*.tmp"),
    ]
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found
