"""The main job end to end at test size: three methods trained, faced off, summarised."""

from __future__ import annotations

import json

import pytest

from detente.evaluate.demo import METHODS, DemoSettings, run_demo


def test_demo_writes_the_table_and_refuses_another_config_in_its_folder(tmp_path, tiny_overrides):
    overrides = (*tiny_overrides, "train.iterations=1")
    settings = DemoSettings(eval_games=2, overrides=overrides)
    summary = run_demo(settings, tmp_path)
    written = json.loads((tmp_path / "demo.json").read_text())
    assert written == summary and list(written) == list(METHODS)
    for row in written.values():
        assert 0 <= row["selfplay_coop_rate"] <= 1
        assert 0 <= row["reward_vs_always_defect"] <= 1  # at most P per round against AD
        assert 2 <= row["selfplay_collective_reward"] <= 6  # between 2P and 2R per round
    assert (tmp_path / "report.html").is_file()
    changed = DemoSettings(eval_games=2, overrides=(*overrides, "train.lr=0.5"))
    with pytest.raises(ValueError, match=r"train\.lr: 0\.01 != 0\.5"):
        run_demo(changed, tmp_path)
