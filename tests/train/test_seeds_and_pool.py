"""The iteration's seeds (one namespace per purpose) and the opponent pool's per-game draws."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from detente.config import load_config
from detente.rollout.records import GameRecord
from detente.rollout.runner import Match
from detente.train.trainer import LIVE, Purpose, Trainer, iteration_seed, opponent_draws


@pytest.mark.parametrize("seed", [0, 1, 7, 2**40 + 3])
def test_seeds_of_purposes_and_groups_never_coincide(seed: int) -> None:
    seeds = []
    for iteration in range(40):
        seeds += [iteration_seed(seed, iteration, Purpose.ENV, group) for group in range(64)]
        seeds += [iteration_seed(seed, iteration, Purpose.ROLLOUT)]
        seeds += [iteration_seed(seed, iteration, Purpose.SEATS)]
    assert len(set(seeds)) == len(seeds) == 40 * 66


class _SeedRecorder:
    """Stands in for the rollouts: records the seed it is asked to play with, plays nothing."""

    def __init__(self) -> None:
        self.seeds: list[int] = []

    def play(self, matches: Sequence[Match], seed: int, first_index: int = 0) -> list[GameRecord]:
        self.seeds.append(seed)
        return []


def test_trainer_env_seeds_are_not_rollout_seeds(tmp_path, tiny_overrides):
    """Before, ``derive_seed(seed, it, 1)`` was both group 1's environment seed and the rollout
    seed of the iteration."""
    config = load_config("ipd-naive-tiny", tiny_overrides)  # 8 groups of one game
    trainer = Trainer.create(config, tmp_path / "run")
    recorder = _SeedRecorder()
    trainer.rollouts = recorder  # type: ignore[assignment]
    for iteration in range(10):
        trainer.rollout(iteration)
        env = [m.game.seed for m in trainer.matches(iteration)]
        assert len(set(env)) == 8
        assert env == [iteration_seed(0, iteration, Purpose.ENV, g) for g in range(8)]
        assert recorder.seeds[-1] not in env
    assert recorder.seeds == [iteration_seed(0, it, Purpose.ROLLOUT) for it in range(10)]


def test_opponent_draws_per_game_respect_p_past() -> None:
    draws = opponent_draws(np.random.default_rng(0), 20000, 4, 0.3)
    past = np.array([d is not None for d in draws])
    assert past.mean() == pytest.approx(0.3, abs=0.015)  # ~4.6 standard errors
    counts = np.bincount([d for d in draws if d is not None], minlength=4) / len(draws)
    np.testing.assert_allclose(counts, 0.075, atol=0.01)  # uniform over the pool
    assert opponent_draws(np.random.default_rng(1), 50, 4, 0.0) == [None] * 50
    assert None not in opponent_draws(np.random.default_rng(1), 50, 4, 1.0)
    assert opponent_draws(np.random.default_rng(1), 50, 0, 1.0) == [None] * 50


def test_pool_opponent_is_drawn_per_game_within_seed_groups(tmp_path, tiny_overrides):
    config = load_config(
        "ipd-adalign-tiny",
        [*tiny_overrides, "train.group_size=4", "pool.every=1", "pool.p_past=0.5"],
    )
    trainer = Trainer.create(config, tmp_path / "run")
    trainer.engine.copy_adapter(LIVE, "pool-000001")
    trainer.state.pool.append("pool-000001")
    mixed_groups, opponents = 0, []
    for iteration in range(30):
        matches = trainer.matches(iteration)
        for group in range(2):
            members = matches[4 * group : 4 * group + 4]
            learner = group % 2
            assert all(m.group == group and m.learners[learner] for m in members)
            assert all(not m.learners[1 - learner] for m in members)
            assert all(m.policies[learner].name == LIVE for m in members)
            names = [m.policies[1 - learner].name for m in members]
            mixed_groups += len(set(names)) > 1
            opponents += names
    assert set(opponents) == {LIVE, "pool-000001"}
    assert opponents.count("pool-000001") / len(opponents) == pytest.approx(0.5, abs=0.1)
    assert mixed_groups > 30  # of 60 groups; a draw per group would give none
