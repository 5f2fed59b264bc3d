"""The main job end to end at test size: both games, two seeds, three methods trained, faced
off, the robustness test, aggregated over seeds."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from detente.evaluate.stats import mean_ci95
from detente.studies.demo import (
    METHODS,
    DemoSettings,
    aggregate,
    markdown_table,
    parse_seeds,
    run_demo,
)
from detente.studies.schedule import TaskFailed


def test_parse_seeds() -> None:
    assert parse_seeds("3") == (3,)
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("0,2,5") == (0, 2, 5)
    for bad in ("", "a", "1-", "1,1", "0-x"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_aggregate_is_the_mean_and_t_interval_over_seeds() -> None:
    per_seed = [{"naive": {"x": v, "y": None}} for v in (0.1, 0.4, 0.3)]
    table = aggregate(per_seed)
    mean, half = mean_ci95([0.1, 0.4, 0.3])
    assert table["naive"]["x"] == {"mean": mean, "ci95": half, "n": 3}
    assert table["naive"]["y"] == {"mean": None, "ci95": None, "n": 0}
    assert aggregate(per_seed[:1])["naive"]["x"]["ci95"] is None  # one seed: no interval
    assert "| naive | 0.27 ± " in markdown_table(table)


def test_demo_over_two_games_and_seeds_and_refuses_another_config(tmp_path, tiny_overrides):
    overrides = (*tiny_overrides, "train.iterations=1", "train.games_per_iteration=8")
    settings = DemoSettings(seeds=(0, 1), eval_games=2, overrides=overrides)
    results = run_demo(settings, tmp_path)
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == json.loads(json.dumps(results))
    for game in ("ipd", "trust-split"):
        entry = written[game]
        assert list(entry["table"]) == list(METHODS)
        assert set(entry["per_seed"]) == {"0", "1"}
        assert set(entry["robustness"]) == {"adalign", "sum"}
        assert entry["prior"]["measured"]["all probes"]
        for method in METHODS:
            values = [entry["per_seed"][s]["summary"][method] for s in ("0", "1")]
            cell = entry["table"][method]["selfplay_collective_reward"]
            both = [v["selfplay_collective_reward"] for v in values]
            assert cell["mean"] == pytest.approx(sum(both) / 2) and cell["n"] == 2
        for seed in ("0", "1"):
            folder = tmp_path / game / f"s{seed}"
            assert (folder / "report.html").is_file()
            assert (folder / "exploit-adalign" / "metrics.jsonl").is_file()
            per_seed = json.loads((folder / "demo.json").read_text())
            assert per_seed == entry["per_seed"][seed]
    ipd = written["ipd"]["per_seed"]["0"]["summary"]
    for row in ipd.values():
        assert 0 <= row["selfplay_coop_rate"] <= 1
        assert 0 <= row["reward_vs_always_defect"] <= 1  # at most P per round against AD
        assert 2 <= row["selfplay_collective_reward"] <= 6  # between 2P and 2R per round
    readme = (tmp_path / "README.md").read_text()
    assert "## ipd" in readme and "## trust-split" in readme and "frozen target" in readme
    changed = DemoSettings(
        games=("ipd",), seeds=(0,), eval_games=2, overrides=(*overrides, "train.lr=0.5")
    )
    with pytest.raises(TaskFailed, match=r"^ipd s0 adalign: .*train\.lr: 0\.01 != 0\.5"):
        run_demo(changed, tmp_path)


def test_the_demo_on_two_worker_processes_gives_the_numbers_of_one_process(
    tmp_path, tiny_overrides
) -> None:
    """Each task is deterministic in its inputs and thread count, whatever ran beside it."""
    import torch

    overrides = (*tiny_overrides, "train.iterations=1", "train.games_per_iteration=8")
    settings = DemoSettings(games=("ipd",), eval_games=2, overrides=overrides, threads=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = run_demo(settings, tmp_path / "one")
    finally:
        torch.set_num_threads(threads)
    beside = run_demo(replace(settings, jobs=2), tmp_path / "two")
    assert beside["seconds"]["jobs"] == 2 and set(beside["seconds"]["tasks"]) == set(
        alone["seconds"]["tasks"]
    )
    for key in ("ipd", "model", "seeds"):
        assert beside[key] == alone[key]
