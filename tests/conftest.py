"""Tests run offline; models build into $DETENTE_CACHE (CI sets it inside the clone).

Shared fixtures: the overrides that make a training run of the embedded test model take
seconds, and one such run, trained once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    """Config overrides for a seconds-long run of the embedded ``tiny-test`` model."""
    return [
        "model.name=tiny-test",
        "train.games_per_iteration=8",
        "game.options.rounds=3",
        "train.minibatch_sequences=8",
        "train.lr=0.01",
    ]


@pytest.fixture(scope="session")
def trained_ipd_run(tmp_path_factory: pytest.TempPathFactory, tiny_overrides: list[str]) -> Path:
    """A finished 2-iteration IPD run (Advantage Alignment, a pool snapshot every iteration)."""
    from detente.config import load_config
    from detente.train.trainer import Trainer

    config = load_config(
        "ipd-adalign-tiny", [*tiny_overrides, "train.iterations=2", "pool.every=1"]
    )
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    Trainer.create(config, run_dir).run(progress=False)
    return run_dir


def _split_logprobs(records) -> tuple[list, list]:
    exact, logprobs = [], []
    for record in records:
        data = record.to_json()
        for seat in data["seats"]:
            for turn in seat["turns"]:
                logprobs += turn.pop("logprobs")
        exact.append(data)
    return exact, logprobs


@pytest.fixture(scope="session")
def assert_same_records():
    """Asserts two lists of game records equal: exactly, but for the sampled tokens' log-probs,
    which may differ by float rounding (another process, another batch)."""

    def check(a, b) -> None:
        exact_a, logp_a = _split_logprobs(a)
        exact_b, logp_b = _split_logprobs(b)
        assert exact_a == exact_b
        assert logp_a == pytest.approx(logp_b, abs=1e-4)

    return check
