"""eval.every / eval.bots / eval.games: face-offs against the preset's bots during training, in
the metrics lines and the run's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detente.config import load_config
from detente.evaluate.faceoff import against_opponents
from detente.evaluate.report import write_report
from detente.policies.bots import make_bot
from detente.train.trainer import Purpose, Trainer, iteration_seed


def lines(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_every_n_iterations_and_after_the_last(tmp_path, tiny_overrides):
    config = load_config(
        "ipd-naive-tiny",
        [*tiny_overrides, "train.iterations=3", "eval.every=2", "eval.games=2",
         "eval.bots=[always-defect,tit-for-tat]"],
    )  # fmt: skip
    run = tmp_path / "run"
    trainer = Trainer.create(config, run)
    trainer.run(progress=False)
    metrics = lines(run)
    evaluated = [m["iteration"] for m in metrics if "eval/tit-for-tat/reward" in m]
    assert evaluated == [1, 2]  # after iteration 2 (every 2) and after the last (3)
    last = metrics[-1]
    for bot in ("always-defect", "tit-for-tat"):
        for key in ("reward", "ci95", "opponent_reward", "coop_rate", "invalid_rate"):
            assert f"eval/{bot}/{key}" in last, (bot, key)
        assert 0.0 <= last[f"eval/{bot}/reward"] <= 5.0
    # Against always-defect the agent gets at most the sucker's 0 or mutual defection's 1.
    assert last["eval/always-defect/reward"] <= 1.0
    # The numbers are those of the live policy against the bots, in the training protocol.
    again = against_opponents(
        "ipd", trainer.live, [make_bot("ipd", "always-defect"), make_bot("ipd", "tit-for-tat")],
        trainer.protocol, 2, iteration_seed(config.seed, 0, Purpose.EVAL, 0),
        iteration_seed(config.seed, 2, Purpose.EVAL, 1), trainer.game_config, config.invalid,
    )  # fmt: skip
    assert again["bot:tit-for-tat"]["reward"] == pytest.approx(last["eval/tit-for-tat/reward"])
    page = write_report(run).read_text()
    assert "Evaluation against bots" in page and "always-defect" in page
    assert (run / "report-plots" / "eval_reward.png").is_file()


def test_end_only_by_default_and_none_without_bots(tmp_path, tiny_overrides):
    base = [*tiny_overrides, "train.iterations=2", "eval.games=1"]
    config = load_config("ipd-naive-tiny", base)
    assert config.eval.every == 0 and config.eval.bots  # the preset's bots
    Trainer.create(config, tmp_path / "a").run(progress=False)
    assert [("eval/tit-for-tat/reward" in m) for m in lines(tmp_path / "a")] == [False, True]
    config = load_config("ipd-naive-tiny", [*base, "eval.bots=[]"])
    Trainer.create(config, tmp_path / "b").run(progress=False)
    assert not any(k.startswith("eval/") for m in lines(tmp_path / "b") for k in m)
    assert "Evaluation against bots" not in write_report(tmp_path / "b").read_text()


def test_an_unknown_bot_is_a_config_error(tiny_overrides):
    with pytest.raises(ValueError, match=r"eval.bots: no bot 'tit-for-tatt' for ipd \(did you "
                       r"mean tit-for-tat\?\)"):  # fmt: skip
        load_config("ipd-naive-tiny", [*tiny_overrides, "eval.bots=[tit-for-tatt]"])


def test_train_prints_the_last_evaluation(tmp_path, tiny_overrides, capsys):
    from detente.cli import main

    out = tmp_path / "run"
    args = [*tiny_overrides, "train.iterations=1", "eval.games=1", "--out", str(out)]
    assert main(["train", "ipd-naive-tiny", *args]) == 0
    printed = capsys.readouterr().out
    assert "evaluation against the bots" in printed
    assert "vs tit-for-tat (after iteration 1): reward" in printed
