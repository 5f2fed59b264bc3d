"""Experiment tracking (issue 17, point 3): TensorBoard event files by default, read back here;
W&B through its API (a stand-in module here: the tests stay offline)."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from detente.config import load_config
from detente.train.trainer import Trainer


def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_by_default_scalars_config_and_games(tmp_path, tiny_overrides):
    config = load_config("ipd-naive-tiny", [*tiny_overrides, "train.iterations=2",
                                            "eval.games=1"])  # fmt: skip
    assert config.logging.backends == ["tensorboard"]
    run = tmp_path / "run"
    Trainer.create(config, run).run(progress=False)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    tb = events(run)
    rewards = tb.Scalars("reward")
    assert [e.step for e in rewards] == [0, 1]
    assert [e.value for e in rewards] == pytest.approx([m["reward"] for m in lines])
    (evaluated,) = tb.Scalars("eval/tit-for-tat/reward")
    assert evaluated.step == 1
    assert evaluated.value == pytest.approx(lines[1]["eval/tit-for-tat/reward"])
    tags = tb.Tags()["tensors"]
    assert "config/text_summary" in tags and "games/0/text_summary" in tags
    text = tb.Tensors("games/0/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "round 1" in text and "rewards:" in text
    config_text = tb.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "train:" in config_text
    plugins = tb.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in plugins and "_hparams_/session_start_info" in plugins
    assert b"train.lr" in plugins["_hparams_/session_start_info"]


def test_no_backends_writes_no_events(tmp_path, tiny_overrides):
    config = load_config("ipd-naive-tiny", [*tiny_overrides, "train.iterations=1",
                                            "eval.bots=[]", "logging.backends=[]"])  # fmt: skip
    Trainer.create(config, tmp_path / "run").run(progress=False)
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_wandb_when_asked_and_an_error_without_it(tmp_path, tiny_overrides, monkeypatch):
    overrides = [*tiny_overrides, "train.iterations=1", "eval.bots=[]",
                 "logging.backends=[wandb]"]  # fmt: skip
    config = load_config("ipd-naive-tiny", overrides)
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="pip install wandb"):
        Trainer.create(config, tmp_path / "a").run(progress=False)
    monkeypatch.undo()

    calls: dict[str, list] = {"init": [], "log": [], "finish": []}

    class Run:
        def log(self, data, step):
            calls["log"].append((step, data))

        def finish(self):
            calls["finish"].append(True)

    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    fake.init = lambda **kwargs: calls["init"].append(kwargs) or Run()
    fake.Html = lambda text: ("html", text)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    Trainer.create(config, tmp_path / "b").run(progress=False)
    (init,) = calls["init"]
    assert init["project"] == "detente" and init["config"]["train"]["iterations"] == 1
    (step, data), = calls["log"]
    assert step == 0 and "reward" in data and data["games/0"][0] == "html"
    assert calls["finish"] == [True]
