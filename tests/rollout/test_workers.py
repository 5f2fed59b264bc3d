"""Ray rollout workers on a local 2-CPU cluster: same seed, same run whatever the worker count;
a killed worker is replaced and its games replayed within the iteration."""

from __future__ import annotations

import json

import pytest
import torch

from detente.config import load_config
from detente.rollout.records import read_records
from detente.train.trainer import Trainer

ray = pytest.importorskip("ray")
torch.set_num_threads(1)

ITERATIONS = 2
TIMING = {"rollout_s", "update_s", "eval_s", "tokens_per_s"}


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def overrides(tiny_overrides: list[str], workers: int) -> list[str]:
    # A pool snapshot every iteration, always the opponent: frozen and trained adapters synced.
    return [
        *tiny_overrides,
        f"train.iterations={ITERATIONS}",
        "pool.every=1",
        "pool.p_past=1.0",
        f"runtime.workers={workers}",
    ]


def train(tmp_path, tiny_overrides: list[str], workers: int) -> Trainer:
    config = load_config("ipd-adalign-tiny", overrides(tiny_overrides, workers))
    trainer = Trainer.create(config, tmp_path / f"workers-{workers}")
    trainer.run(progress=False)
    return trainer


def metrics(trainer: Trainer) -> list[dict]:
    lines = (trainer.run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def transcripts(trainer: Trainer) -> list:
    folder = trainer.run_dir / "transcripts"
    return [r for path in sorted(folder.iterdir()) for r in read_records(path)]


def test_same_run_whatever_the_worker_count_and_a_killed_worker_is_replayed(
    cluster, tmp_path, tiny_overrides, assert_same_records
):
    local = train(tmp_path, tiny_overrides, workers=0)
    remote = train(tmp_path, tiny_overrides, workers=2)
    assert remote.rollouts.held == [{"live": 1, "pool-000001": 0}] * 2  # synced by version
    assert_same_records(transcripts(remote), transcripts(local))
    for got, want in zip(metrics(remote), metrics(local), strict=True):
        assert [k for k, v in got.items() if v is None] == [k for k, v in want.items() if v is None]
        got, want = ({k: v for k, v in m.items() if v is not None} for m in (got, want))
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)
    for a, b in zip(remote.params, local.params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)

    # Kill one worker: the next rollout replaces it, replays its shard, loses nothing.
    ray.kill(remote.rollouts.actors[1], no_restart=True)
    records = remote.rollout(ITERATIONS)
    assert remote.rollouts.restarts == 1
    assert_same_records(records, local.rollout(ITERATIONS))
    remote.rollouts.close()


def test_one_worker_plays_like_the_trainer(cluster, tmp_path, tiny_overrides, assert_same_records):
    one = load_config("ipd-naive-tiny", [*tiny_overrides, "runtime.workers=1"])
    remote = Trainer.create(one, tmp_path / "one")
    local = Trainer.create(load_config("ipd-naive-tiny", tiny_overrides), tmp_path / "zero")
    assert_same_records(remote.rollout(0), local.rollout(0))
    remote.rollouts.close()
