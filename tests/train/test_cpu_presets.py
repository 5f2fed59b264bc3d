"""Every CPU preset (game × method) trains end to end: one iteration of each on the test model."""

from __future__ import annotations

import json
import math

import pytest

from detente.config import load_config
from detente.rollout.records import read_records
from detente.train.trainer import Trainer

GAME_MEASURES = {
    "ipd": {"coop_rate", "p_coop_after_c", "p_coop_after_d"},
    "trust-split": {"claim_upper", "claim_lower", "efficiency"},
    "split": {"efficiency"},
    "dond": {"agreement_rate"},
}


@pytest.mark.parametrize("method", ["naive", "sum", "adalign"])
@pytest.mark.parametrize("game", sorted(GAME_MEASURES))
def test_cpu_preset_runs_one_iteration(game, method, tmp_path, tiny_overrides):
    config = load_config(
        f"{game}-{method}-tiny", [*tiny_overrides, "train.iterations=1", "game.options.rounds=2"]
    )
    run = tmp_path / "run"
    Trainer.create(config, run).run(progress=False)

    (line,) = [json.loads(text) for text in (run / "metrics.jsonl").read_text().splitlines()]
    assert GAME_MEASURES[game] | {"reward", "collective_reward", "invalid_rate"} <= set(line)
    assert math.isfinite(line["loss"]) and math.isfinite(line["grad_norm"])
    assert 0.0 <= line["invalid_rate"] <= 1.0
    assert (run / "checkpoints" / "iter-000001" / "adapter" / "adapter_config.json").is_file()

    records = list(read_records(run / "transcripts" / "iter-000000.jsonl.gz"))
    assert len(records) == config.train.games_per_iteration
    learners = [sum(seat.learner for seat in record.seats) for record in records]
    # Self-play methods train both seats; Advantage Alignment with the pool trains one per game.
    assert set(learners) == ({1} if method == "adalign" else {2})
    expected = sum(
        len(turn.token_ids)
        for record in records
        for seat in record.seats
        if seat.learner
        for turn in seat.turns
    )
    assert line["action_tokens"] == expected
