"""Data-parallel learners (gloo, 2 processes on CPU) take the update of one process on the
whole batch: each plays half the games and back-propagates half the sequences."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from detente.config import load_config
from detente.train.distributed import DataParallel
from detente.train.trainer import Trainer

WORLD = 2


def one_step(overrides: list[str], run_dir: Path) -> dict:
    """Rollout and update of iteration 0; the adapter after the step, stats and records."""
    torch.set_num_threads(1)
    trainer = Trainer(load_config("ipd-adalign-tiny", overrides), run_dir)
    records = trainer.rollout(0)
    stats = trainer.update(records)
    return {
        "rank": trainer.dp.rank,
        "params": [p.detach().clone() for p in trainer.params],
        "stats": stats.__dict__,
        "records": records,
    }


def _rank(rank: int, port: int, overrides: list[str], out: Path) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        torch.save(one_step(overrides, out / "run"), out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_take_the_one_process_step(
    tmp_path, tiny_overrides, monkeypatch, assert_same_records
):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[2]))  # spawned children import us
    overrides = [*tiny_overrides, "train.games_per_iteration=6", "train.minibatch_sequences=2"]
    alone = one_step(overrides, tmp_path / "alone")
    assert alone["rank"] == 0 and DataParallel.from_env().size == 1
    mp.spawn(_rank, args=(free_port(), overrides, tmp_path), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    before = Trainer(load_config("ipd-adalign-tiny", overrides), tmp_path / "fresh").params
    step = max(float((a - b).abs().max()) for a, b in zip(alone["params"], before, strict=True))
    assert step > 1e-3  # Adam's first step moves weights by about lr = 0.01
    for result in ranks:
        assert_same_records(result["records"], alone["records"])  # shards played, gathered
        assert result["stats"] == pytest.approx(alone["stats"], rel=1e-4, abs=1e-6)
        for got, want in zip(result["params"], alone["params"], strict=True):
            # Float sums in another order; Adam's sqrt(v) can stretch a tiny gradient gap.
            torch.testing.assert_close(got, want, rtol=0, atol=1e-3 * step)
    for a, b in zip(ranks[0]["params"], ranks[1]["params"], strict=True):
        assert torch.equal(a, b)  # the same summed gradient on every learner
    assert not (tmp_path / "run").exists()  # only rank 0 writes, and a bare step writes nothing
