"""A metrics line never holds NaN or Infinity, and a non-finite update takes no optimizer step."""

from __future__ import annotations

import json
import math

import pytest
import torch

from detente.config import load_config
from detente.train.trainer import NonFiniteUpdate, Trainer


@pytest.fixture
def trainer(tmp_path, tiny_overrides) -> Trainer:
    config = load_config("ipd-naive-tiny", [*tiny_overrides, "train.iterations=2"])
    return Trainer.create(config, tmp_path / "run")


def test_nan_gradient_takes_no_step_and_writes_no_line(trainer: Trainer) -> None:
    def poisoned(chunk, total_tokens):
        for param in trainer.params:
            param.grad = torch.full_like(param, math.nan)
        keys = ("loss", "pg", "kl", "entropy", "mean_ratio", "clip_fraction")
        return dict.fromkeys(keys, 0.0)

    before = [p.detach().clone() for p in trainer.params]
    trainer._accumulate = poisoned  # type: ignore[method-assign]
    with pytest.raises(NonFiniteUpdate, match="grad_norm"):
        trainer.iteration(0)
    for old, param in zip(before, trainer.params, strict=True):
        torch.testing.assert_close(param.detach(), old, rtol=0, atol=0)
    assert not (trainer.run_dir / "metrics.jsonl").exists()
    assert trainer.state.iteration == 0


def test_infinite_metric_is_an_error_not_an_infinity_line(trainer: Trainer) -> None:
    measured = trainer._metrics

    def with_inf(*args, **kwargs):
        return {**measured(*args, **kwargs), "tokens_per_s": math.inf}

    trainer._metrics = with_inf  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="JSON compliant"):
        trainer.iteration(0)
    path = trainer.run_dir / "metrics.jsonl"
    assert not path.exists() or "Infinity" not in path.read_text()


def test_metrics_lines_are_strict_json(trainer: Trainer) -> None:
    trainer.run(progress=False)
    def refuse(name: str) -> None:
        pytest.fail(f"{name} in a metrics line")

    for text in (trainer.run_dir / "metrics.jsonl").read_text().splitlines():
        line = json.loads(text, parse_constant=refuse)
        assert all(not isinstance(v, float) or math.isfinite(v) for v in line.values())
