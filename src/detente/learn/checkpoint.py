"""Checkpoints of a run, written so that a crash mid-write never corrupts the last good one.

Layout under ``RUN_DIR/checkpoints``: ``iter-NNNNNN/`` holds the live adapter (peft format),
``optimizer.pt``, ``rng.pt`` (python, numpy and torch generator states) and ``state.json``
(iteration, pool). A checkpoint is built in a temporary folder and renamed into place; the
``latest`` file, replaced atomically afterwards, names the newest complete one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

LATEST = "latest"


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
) -> Path:
    """Write checkpoint ``state.iteration``; ``save_adapter(folder)`` writes the live adapter.

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
