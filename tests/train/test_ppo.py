"""The PPO-clipped loss option (``train.loss=ppo``) end to end on the embedded test model: config
checks, ``ppo_epochs`` optimizer steps per iteration with their diagnostics, REINFORCE's step
at one epoch, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from detente.config import ConfigError, load_config
from detente.learn.loss import LossType
from detente.train.trainer import Trainer

TIMING = {"rollout_s", "update_s", "eval_s", "tokens_per_s"}
PPO_KEYS = {"approx_kl", "ppo_clip_fraction"}


def metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def adapter(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.params]


@pytest.mark.parametrize(
    ("overrides", "key", "reason"),
    [
        (["train.loss=ppo", "train.clip_epsilon=1.5"], r"train\.clip_epsilon", "less than 1"),
        (["train.loss=ppo", "train.clip_epsilon=0"], r"train\.clip_epsilon", "greater than 0"),
        (["train.loss=ppo", "train.clip_epsilon=.nan"], r"train\.clip_epsilon", ""),
        (["train.loss=ppo", "train.ppo_epochs=0"], r"train\.ppo_epochs", "greater than"),
        (["train.loss=trpo"], r"train\.loss", "'reinforce' or 'ppo'"),
        (["train.clip_epsilon=0.3"], "clip_epsilon=0.3 has no effect", "loss=reinforce"),
        (["train.ppo_epochs=2"], "ppo_epochs=2 has no effect", "loss=reinforce"),
    ],
)
def test_bad_ppo_options_are_config_errors_that_name_the_key(overrides, key, reason):
    with pytest.raises(ConfigError, match=key) as error:
        load_config("ipd-adalign-tiny", overrides)
    assert reason in str(error.value)


def test_ppo_defaults_and_reinforce_default():
    train = load_config("ipd-adalign-tiny").train
    assert train.loss is LossType.REINFORCE and train.ppo_epochs == 4 and train.clip_epsilon == 0.2
    train = load_config("ipd-adalign-tiny", ["train.loss=ppo", "train.ppo_epochs=4"]).train
    assert train.loss is LossType.PPO


def test_a_tiny_ppo_run_takes_an_adam_step_per_epoch_and_writes_its_diagnostics(
    tmp_path, tiny_overrides
):
    overrides = [*tiny_overrides, "train.iterations=2", "train.loss=ppo", "train.ppo_epochs=2",
                 "train.kl_coef=0.1", "pool.every=1"]  # fmt: skip
    trainer = Trainer.create(load_config("ipd-adalign-tiny", overrides), tmp_path / "run")
    phases: list[str] = []
    trainer.on_phase = phases.append
    for iteration in range(2):
        trainer.iteration(iteration)
    assert "iteration 2: learning, epoch 2/2" in phases
    steps = {int(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()}
    assert steps == {4}  # two iterations of two epochs
    lines = metrics(tmp_path / "run")
    assert len(lines) == 2
    for line in lines:
        assert set(line) >= PPO_KEYS
        assert 0.0 <= line["ppo_clip_fraction"] <= 1.0
        # the second epoch's policy is one step away from π_old: k3 is positive
        assert 0.0 < line["approx_kl"] < 1.0
        assert line["mean_ratio"] == pytest.approx(1.0, abs=1e-4)  # π_old is the sampler's
    reinforce = Trainer.create(
        load_config("ipd-adalign-tiny", [*tiny_overrides, "train.iterations=1"]),
        tmp_path / "reinforce",
    )
    assert not PPO_KEYS & set(reinforce.iteration(0))


def test_one_ppo_epoch_takes_the_reinforce_step(tmp_path, tiny_overrides):
    """At θ = θ_old (π_old scored by the training forward, no dropout) r = 1: one epoch of PPO
    is REINFORCE's update (the same gradient up to rounding), with nothing clipped. (Compared
    as gradients: Adam's first step, lr · g / (|g| + 1e-8), magnifies rounding where g ≈ 0.)"""
    lines, grads = {}, {}
    for loss in ("reinforce", "ppo"):
        overrides = [*tiny_overrides, "train.iterations=1", f"train.loss={loss}",
                     "train.kl_coef=0.1", "train.entropy_coef=0.01"]  # fmt: skip
        if loss == "ppo":
            overrides.append("train.ppo_epochs=1")
        trainer = Trainer.create(load_config("ipd-adalign-tiny", overrides), tmp_path / loss)
        lines[loss] = trainer.iteration(0)
        grads[loss] = [p.grad.detach().clone() for p in trainer.params]  # after the clip
    ppo, reinforce = lines["ppo"], lines["reinforce"]
    assert ppo["approx_kl"] == pytest.approx(0.0, abs=1e-7) and ppo["ppo_clip_fraction"] == 0.0
    assert ppo["grad_norm"] == pytest.approx(reinforce["grad_norm"], rel=1e-5)
    for key in ("kl", "entropy", "mean_ratio", "reward"):
        assert ppo[key] == pytest.approx(reinforce[key], rel=1e-6)
    scale = max(float(g.abs().max()) for g in grads["reinforce"])
    assert scale > 0
    for a, b in zip(grads["ppo"], grads["reinforce"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * scale)


def test_ppo_resume_equals_uninterrupted(tmp_path, tiny_overrides):
    """Several optimizer steps per iteration, LoRA dropout seeded per (epoch, mini-batch) and
    the optimizer's state all come back: a run cut after its first iteration and resumed
    writes the same metrics and ends with the same adapter."""
    # (no pool snapshots here: lm/adapters.py leaves a copied or loaded adapter's LoRA dropout
    # in training mode, so with dropout a snapshot's seat samples with random dropout)
    overrides = [*tiny_overrides, "train.iterations=3", "train.loss=ppo", "train.ppo_epochs=2",
                 "model.lora.dropout=0.3", "train.minibatch_sequences=3"]  # fmt: skip
    whole = Trainer.create(load_config("ipd-adalign-tiny", overrides), tmp_path / "whole")
    whole.run(progress=False)
    cut = Trainer.create(load_config("ipd-adalign-tiny", overrides), tmp_path / "cut")
    cut.iteration(0)
    cut.close()
    resumed = Trainer.resume(tmp_path / "cut")
    resumed.run(progress=False)
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "whole")
    for a, b in zip(adapter(resumed), adapter(whole), strict=True):
        assert torch.equal(a, b)
