"""The training loop end to end on the embedded test model: run directory, pool, exact resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from detente.config import load_config
from detente.rollout.records import read_records
from detente.train.trainer import LIVE, RunDirError, Trainer

TIMING = {"rollout_s", "update_s", "eval_s", "tokens_per_s"}


def metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def test_run_directory_is_complete_and_never_overwritten(tmp_path, tiny_overrides):
    config = load_config("ipd-naive-tiny", [*tiny_overrides, "train.iterations=2"])
    trainer = Trainer.create(config, tmp_path / "run")
    trainer.run(progress=False)
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and len(metrics(run)) == 2
    assert (run / "checkpoints" / "latest").read_text() == "iter-000002"
    assert (run / "checkpoints" / "iter-000002" / "adapter" / "adapter_config.json").is_file()
    assert sorted(p.name for p in (run / "transcripts").iterdir()) == [
        "iter-000000.jsonl.gz",
        "iter-000001.jsonl.gz",
    ]
    line = metrics(run)[0]
    for key in (
        "reward",
        "collective_reward",
        "coop_rate",
        "p_coop_after_c",
        "invalid_rate",
        "loss",
        "pg",
        "kl",
        "entropy",
        "grad_norm",
        "mean_ratio",
        "action_tokens",
    ):
        assert key in line, key
    assert line["grad_norm"] > 0
    with pytest.raises(RunDirError, match="already holds this run"):
        Trainer.create(config, run)


def test_constrained_moves_are_scored_under_their_mask(tmp_path, tiny_overrides):
    """With ``invalid.constrain_moves`` every move is sampled from the model restricted to the
    legal replies; the trainer scores it under the same restriction, so before the step the
    importance ratio is 1 (scored over the whole vocabulary it would be p / p_masked < 1)."""
    config = load_config(
        "ipd-naive-tiny", [*tiny_overrides, "train.iterations=1", "invalid.constrain_moves=true"]
    )
    trainer = Trainer.create(config, tmp_path / "run")
    line = trainer.iteration(0)
    (records,) = [read_records(p) for p in (tmp_path / "run" / "transcripts").iterdir()]
    turns = [t for r in records for s in r.seats for t in s.turns]
    assert turns and all(t.constrained and not t.invalid_attempts for t in turns)
    for turn in turns:
        assert len(turn.allowed) == len(turn.token_ids) == 2  # the move, then end of turn
        assert len(turn.allowed[0]) == 2 and len(turn.allowed[1]) == 1
        assert turn.token_ids[0] in turn.allowed[0]
    assert line["mean_ratio"] == pytest.approx(1.0, abs=1e-4)
    assert line["constrained_rate"] == 1.0 and line["invalid_rate"] == 0.0


@pytest.mark.parametrize("constrain_moves", [True, False])
def test_top_p_replies_are_scored_under_the_same_nucleus(tmp_path, tiny_overrides, constrain_moves):
    """With ``sampling.top_p`` < 1 the engine samples from the renormalised nucleus; the trainer
    scores under the same nucleus, so before the step the importance ratio is 1 (over the
    whole distribution it would be the nucleus mass, about 0.8 here)."""
    config = load_config(
        "trust-split-naive-tiny",
        [*tiny_overrides, "train.iterations=1", "sampling.top_p=0.8", "train.kl_coef=0.05",
         f"invalid.constrain_moves={str(constrain_moves).lower()}"],
    )
    line = Trainer.create(config, tmp_path / "run").iteration(0)
    assert line["mean_ratio"] == pytest.approx(1.0, abs=1e-4)
    assert line["kl"] == pytest.approx(0.0, abs=1e-4)  # the fresh adapter equals the base


def test_opponent_pool_seats_and_learners(tmp_path, tiny_overrides):
    config = load_config(
        "ipd-adalign-tiny",
        [*tiny_overrides, "train.iterations=2", "pool.every=1", "pool.p_past=1.0"],
    )
    trainer = Trainer.create(config, tmp_path / "run")
    trainer.iteration(0)
    assert trainer.state.pool == ["pool-000001"]
    records = trainer.rollout(1)
    for game, record in enumerate(records):
        learner = game % 2  # group size 1: the learner seat alternates between groups
        assert record.seats[learner].learner and not record.seats[1 - learner].learner
        assert record.seats[learner].agent == LIVE
        assert record.seats[1 - learner].agent == "pool-000001"
    stats = trainer.update(records)
    expected = sum(len(t.token_ids) for r in records for s in r.seats if s.learner for t in s.turns)
    assert stats.action_tokens == expected


def test_opponent_pool_learner_seat_cycles_over_n_seats(tmp_path, tiny_overrides):
    """Four players: the learner seat is group mod 4, the drawn opponent fills the three others;
    the metrics' opponent reward is over every co-player seat of a learner."""
    config = load_config(
        "public-goods-adalign-tiny",
        [*tiny_overrides, "train.iterations=2", "pool.every=1", "pool.p_past=1.0"],
    )
    trainer = Trainer.create(config, tmp_path / "run")
    trainer.iteration(0)
    records = trainer.rollout(1)
    assert {len(r.seats) for r in records} == {4} and len(records) == 8
    for game, record in enumerate(records):
        learner = game % 4  # group size 1: the learner seat cycles over the four seats
        assert [s.learner for s in record.seats] == [p == learner for p in range(4)]
        assert [s.agent for s in record.seats] == [
            LIVE if p == learner else "pool-000001" for p in range(4)
        ]
    line = trainer.iteration(1)
    others = [r.mean_reward(q) for i, r in enumerate(records) for q in range(4) if q != i % 4]
    assert line["opponent_reward"] == pytest.approx(sum(others) / len(others))


def test_pool_beyond_resident_snapshots_is_played_in_waves_with_the_same_records(
    tmp_path, tiny_overrides, assert_same_records
):
    """``pool.resident=2`` with 4 snapshots: the engine never holds more than 2, evicted ones
    come back from disk when drawn, and every iteration's games are those of a run that keeps
    them all."""
    overrides = [*tiny_overrides, "train.iterations=5", "pool.every=1", "pool.p_past=1.0"]
    runs = {}
    for resident in (2, 8):
        config = load_config("ipd-adalign-tiny", [*overrides, f"pool.resident={resident}"])
        trainer = Trainer.create(config, tmp_path / f"resident-{resident}")
        held, loads = [], []
        generate, load = trainer.engine.generate, trainer.engine.load_adapter

        def counting_generate(requests, trainer=trainer, held=held, generate=generate):
            held.append(sum(n in trainer.state.pool for n in trainer.engine.adapter_names()))
            return generate(requests)

        def counting_load(name, *args, loads=loads, load=load, **kwargs):
            loads.append(name)
            return load(name, *args, **kwargs)

        trainer.engine.generate, trainer.engine.load_adapter = counting_generate, counting_load
        trainer.run(progress=False)
        runs[resident] = (tmp_path / f"resident-{resident}", max(held), loads)
    (capped, most, reloads), (wide, most_wide, _) = runs[2], runs[8]
    assert most == 2 and most_wide == 4 and reloads
    for name in sorted(p.name for p in (wide / "transcripts").iterdir()):
        assert_same_records(
            read_records(capped / "transcripts" / name), read_records(wide / "transcripts" / name)
        )


def test_fixed_opponent_for_exploitability(tmp_path, tiny_overrides):
    config = load_config(
        "ipd-naive-tiny",
        [*tiny_overrides, "train.iterations=1", "train.opponent=bot:always-defect"],
    )
    trainer = Trainer.create(config, tmp_path / "run")
    records = trainer.rollout(0)
    agents = {s.agent for r in records for s in r.seats if not s.learner}
    assert agents == {"bot:always-defect"}
    line = trainer.iteration(0)
    assert line["opponent_reward"] >= 1.0  # always-defect never gets less than P = 1


def _train_cli(run_dir: Path, iterations: int, overrides: list[str]) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "detente.cli",
        "train",
        "ipd-adalign-tiny",
        *overrides,
        f"train.iterations={iterations}",
        "pool.every=2",
        "--out",
        str(run_dir),
    ]
    return subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def test_resume_after_sigkill_equals_uninterrupted(tmp_path, tiny_overrides):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _train_cli(whole, 4, tiny_overrides).wait(timeout=300) == 0
    proc = _train_cli(killed, 4, tiny_overrides)
    deadline = time.time() + 300
    while time.time() < deadline:
        pointer = killed / "checkpoints" / "latest"
        if pointer.is_file() and pointer.read_text() >= "iter-000002":
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(metrics(killed)) < 4, "the run finished before it could be killed"
    resumed = subprocess.run(
        [sys.executable, "-m", "detente.cli", "resume", str(killed)], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert metrics(killed) == metrics(whole)


def test_exploit_cli_plots_both_players(tmp_path, tiny_overrides):
    out = tmp_path / "exploit"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "detente.cli",
            "exploit",
            "--game",
            "ipd",
            "--target",
            "bot:always-cooperate",
            "--out",
            str(out),
            *tiny_overrides,
            "train.iterations=2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "exploit.png").stat().st_size > 1000
    lines = metrics(out)
    # always-cooperate earns 3 per round against cooperation and 0 against defection
    assert all(line["opponent_reward"] <= 3.0 for line in lines)
    assert "learner reward per round" in proc.stdout
