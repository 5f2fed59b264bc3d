"""Values that validate but are wrong, and run directories in a faulty world (issue 19): non-finite
config values, a step that breaks the adapter, LoRA dropout that works, resume that checks the
config and the lock, and tolerates what a crash leaves behind."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from detente.config import ConfigError, load_config
from detente.evaluate.report import read_metrics
from detente.learn.checkpoint import RunDirError, lock_run
from detente.train.trainer import NonFiniteUpdate, Trainer

TIMING = {"rollout_s", "update_s", "eval_s", "tokens_per_s"}


def metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def adapter(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.params]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# ---- 5: values that validate but are wrong -----------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.lr=inf", "train.lr"),
        ("train.lr=.inf", "train.lr"),
        ("train.lr=.nan", "train.lr"),
        ("train.grad_clip=inf", "train.grad_clip"),
        ("train.beta=inf", "train.beta"),
        ("train.kl_coef=.inf", "train.kl_coef"),
        ("sampling.temperature=inf", "sampling.temperature"),
        ("train.ratio_cap=inf", "train.ratio_cap"),
        ("train.ratio_cap=0.5", "train.ratio_cap"),
        ("train.reward_scale=.inf", "train.reward_scale"),
        ("seed=-5", "seed"),
        ("game.options.temptation=inf", "options.temptation"),
    ],
)
def test_non_finite_and_out_of_range_values_are_rejected_at_load(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("ipd-naive-tiny", [override])


def test_a_step_that_leaves_the_adapter_non_finite_writes_nothing(tmp_path, tiny_overrides):
    config = load_config("ipd-naive-tiny", [*tiny_overrides, "train.iterations=3"])
    trainer = Trainer.create(config, tmp_path / "run")
    trainer.iteration(0)
    saved = adapter(trainer)
    for group in trainer.optimizer.param_groups:  # what train.lr=inf did before it was refused
        group["lr"] = math.inf
    with pytest.raises(NonFiniteUpdate, match="left the adapter non-finite"):
        trainer.iteration(1)
    run = tmp_path / "run"
    assert len(metrics(run)) == 1 and (run / "checkpoints" / "latest").read_text() == "iter-000001"
    assert sorted(p.name for p in (run / "transcripts").iterdir()) == ["iter-000000.jsonl.gz"]
    resumed = Trainer.resume(run)  # the last finite checkpoint: the run goes on from there
    assert resumed.state.iteration == 1 and same(adapter(resumed), saved)
    resumed.run(progress=False)
    assert len(metrics(run)) == 3 and all(bool(torch.isfinite(p).all()) for p in resumed.params)


# ---- 6: LoRA dropout works ------------------------------------------------------------------------


def test_lora_dropout_changes_the_update_not_the_rollout_and_replays(tmp_path, tiny_overrides):
    def one_iteration(name: str, dropout: float) -> tuple[Trainer, list]:
        overrides = [*tiny_overrides, "train.iterations=2", f"model.lora.dropout={dropout}"]
        trainer = Trainer.create(load_config("ipd-naive-tiny", overrides), tmp_path / name)
        trainer.iteration(0)
        return trainer, metrics(tmp_path / name)

    plain, plain_lines = one_iteration("plain", 0.0)
    dropped, dropped_lines = one_iteration("dropped", 0.5)
    again, again_lines = one_iteration("again", 0.5)
    assert plain_lines[0]["reward"] == dropped_lines[0]["reward"]  # sampling never drops
    # the training forward does: LoRA's B starts at 0, so the first loss is the base's, but
    # the gradient of B goes through the dropped-out input
    assert not same(adapter(plain), adapter(dropped))
    assert same(adapter(dropped), adapter(again)) and dropped_lines == again_lines  # seeded
    assert not dropped.engine.model.training  # nothing left in training mode
    assert not any(m.training for m in dropped.engine.model.modules())


def test_lora_dropout_replays_exactly_on_resume(tmp_path, tiny_overrides):
    overrides = [*tiny_overrides, "train.iterations=2", "model.lora.dropout=0.3"]
    whole = Trainer.create(load_config("ipd-naive-tiny", overrides), tmp_path / "whole")
    whole.run(progress=False)
    cut = Trainer.create(load_config("ipd-naive-tiny", overrides), tmp_path / "cut")
    cut.iteration(0)
    resumed = Trainer.resume(tmp_path / "cut")
    resumed.run(progress=False)
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "whole")
    assert same(adapter(resumed), adapter(whole))


# ---- 7: resume with checks -----------------------------------------------------------------------


@pytest.fixture
def two_iterations(tmp_path, tiny_overrides) -> Path:
    config = load_config("ipd-naive-tiny", [*tiny_overrides, "train.iterations=2"])
    trainer = Trainer.create(config, tmp_path / "run")
    trainer.run(progress=False)
    trainer.close()
    return tmp_path / "run"


def edit_config(run: Path, section: str, key: str, value: object) -> None:
    data = yaml.safe_load((run / "config.yaml").read_text())
    data[section][key] = value
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def test_resume_refuses_a_changed_config_and_names_the_first_difference(two_iterations):
    run = two_iterations
    bots = yaml.safe_load((run / "config.yaml").read_text())["eval"]["bots"]
    edit_config(run, "eval", "bots", [])  # split has none of the IPD bots
    edit_config(run, "game", "name", "split")
    with pytest.raises(RunDirError, match=r"first difference: game\.name: 'ipd' != 'split'"):
        Trainer.resume(run)
    edit_config(run, "game", "name", "ipd")
    edit_config(run, "eval", "bots", bots)
    edit_config(run, "train", "lr", 0.02)
    with pytest.raises(RunDirError, match=r"train\.lr: 0\.01 != 0\.02"):
        Trainer.resume(run)
    edit_config(run, "train", "lr", 0.01)
    edit_config(run, "train", "iterations", 3)  # how long it runs may change
    resumed = Trainer.resume(run)
    resumed.run(progress=False)
    assert [m["iteration"] for m in metrics(run)] == [0, 1, 2]


HOLD = """
import sys, time
from pathlib import Path
from detente.learn.checkpoint import lock_run
lock_run(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(120)
"""


def test_a_run_directory_held_by_a_live_process_is_refused(two_iterations):
    run = two_iterations
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=rf"in use by another live process \(pid {holder.pid}\)"):
            Trainer.resume(run)
        done = subprocess.run(
            [sys.executable, "-m", "detente.cli", "resume", str(run)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 1 and f"pid {holder.pid}" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    finally:
        holder.send_signal(signal.SIGKILL)  # the kernel drops a dead process's lock
        holder.wait(timeout=30)
    Trainer.resume(run).close()
    lock_run(run).release()


def test_a_torn_metrics_line_and_leftover_temporaries_do_not_block_resume(two_iterations):
    run = two_iterations
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 2, "reward": 0.5, "lo')  # a full disk, mid-append
    leftovers = [
        run / ".metrics.jsonl.tmp",
        run / "checkpoints" / ".iter-000003.tmp",
        run / "checkpoints" / ".latest.tmp",
        run / "pool" / ".pool-000002.x1y2z3",
        run / "transcripts" / "iter-000002.jsonl.gz.tmp",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".tmp" and "iter-000003" in path.name or "pool-" in path.name:
            path.mkdir()
            (path / "adapter_model.safetensors").write_bytes(b"half")
        else:
            path.write_text("half")
    edit_config(run, "train", "iterations", 3)
    resumed = Trainer.resume(run)
    assert not any(path.exists() for path in leftovers)
    resumed.run(progress=False)
    assert [m["iteration"] for m in metrics(run)] == [0, 1, 2]


def test_a_damaged_checkpoint_file_is_named(two_iterations):
    run = two_iterations
    weights = run / "checkpoints" / "iter-000002" / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(RunDirError, match=r"iter-000002/adapter is damaged"):
        Trainer.resume(run)
    optimizer = run / "checkpoints" / "iter-000001" / "optimizer.pt"
    (run / "checkpoints" / "latest").write_text("iter-000001")
    optimizer.write_bytes(optimizer.read_bytes()[:50])
    with pytest.raises(RunDirError, match=r"iter-000001/optimizer\.pt is damaged"):
        Trainer.resume(run)


def test_train_and_a_concurrent_resume_never_both_write(tmp_path, tiny_overrides):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "detente.cli"]
    train = subprocess.Popen(
        [*command, "train", "ipd-naive-tiny", *tiny_overrides, "train.iterations=1000", "--out",
         str(run)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while not (run / "checkpoints" / "latest").is_file():
            assert time.time() < deadline and train.poll() is None
            time.sleep(0.05)
        resume = subprocess.run(
            [*command, "resume", str(run)], capture_output=True, text=True, timeout=120
        )
        assert train.poll() is None, "the run ended before the resume was tried"
        assert resume.returncode == 1 and "in use by another live process" in resume.stderr
    finally:
        train.send_signal(signal.SIGKILL)
        train.wait(timeout=30)
    done = [m["iteration"] for m in read_metrics(run)]  # (the kill may tear the last line)
    assert done == list(range(len(done)))  # one writer: no line twice


@pytest.mark.slow
def test_repeated_kills_resume_to_the_uninterrupted_run_byte_for_byte(tmp_path, tiny_overrides):
    """SIGKILL at seeded random moments (during start-up, rollouts, updates or checkpoint
    writes), resume each time: the lock, the config check and the clean-up let every resume
    through, and the end is the uninterrupted twin's: metrics and adapter bytes."""
    import random

    arguments = ["ipd-adalign-tiny", *tiny_overrides, "train.iterations=40", "pool.every=2"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    command = [sys.executable, "-m", "detente.cli"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([*command, "train", *arguments, "--out", str(whole)], env=env, check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    rng, kills = random.Random(19), 0
    for attempt in range(8):  # kill each process at a random moment once it has made progress
        step = ["train", *arguments, "--out", str(killed)] if attempt == 0 else ["resume", str(killed)]
        before = len(read_metrics(killed))
        process = subprocess.Popen([*command, *step], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.time() + 120
        while process.poll() is None and len(read_metrics(killed)) <= before:
            assert time.time() < deadline
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        kills += 1
        if kills == 4:
            break
    final = subprocess.run([*command, "resume", str(killed)], env=env, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert final.returncode == 0, final.stderr
    assert kills == 4
    assert metrics(killed) == metrics(whole)
    weights = "checkpoints/iter-000040/adapter/adapter_model.safetensors"
    assert (killed / weights).read_bytes() == (whole / weights).read_bytes()
    for name in ("pool-000002", "pool-000020", "pool-000040"):
        snapshot = f"pool/{name}/adapter_model.safetensors"
        assert (killed / snapshot).read_bytes() == (whole / snapshot).read_bytes()
    assert not [p for p in killed.rglob(".*") if p.name != ".lock"]  # no leftovers
