"""Every method trains on every N-player game (the embedded test model, seconds per run), and
`detente exploit` trains a spiteful learner against a frozen bot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detente.cli import main
from detente.config import load_config
from detente.evaluate.metrics import game_measures
from detente.rollout.records import read_records
from detente.train.trainer import Trainer

N_PLAYER_GAMES = {"multi-ipd": 3, "public-goods": 4, "commons": 5}


@pytest.mark.parametrize("method", ["naive", "sum", "adalign"])
@pytest.mark.parametrize("game", sorted(N_PLAYER_GAMES))
def test_self_play_of_each_method_on_each_n_player_game(tmp_path, tiny_overrides, game, method):
    config = load_config(f"{game}-{method}-tiny", [*tiny_overrides, "train.iterations=2"])
    Trainer.create(config, tmp_path / "run").run(progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [0, 1]
    records = list(read_records(tmp_path / "run" / "transcripts" / "iter-000001.jsonl.gz"))
    players = N_PLAYER_GAMES[game]
    assert {len(r.seats) for r in records} == {players}
    assert all(any(s.learner for s in r.seats) for r in records)
    # the game's own measures reach the metrics line
    measures = game_measures(game, [(r, 0) for r in records])
    assert measures and set(measures) <= set(lines[-1])
    assert lines[-1]["grad_norm"] > 0 and lines[-1]["invalid_rate"] == 0.0


def test_exploit_trains_a_spiteful_learner_against_a_frozen_bot(tmp_path, tiny_overrides, capsys):
    out = tmp_path / "spite"
    args = ["exploit", "--game", "public-goods", "--target", "bot:conditional", "--objective",
            "spite", "--out", str(out), *tiny_overrides, "train.iterations=2"]  # fmt: skip
    assert main(args) == 0
    config = load_config(str(out / "config.yaml"))
    assert config.train.reward_weights == (0.0, -1.0)
    assert config.train.opponent == "bot:conditional"
    printed = capsys.readouterr().out
    assert "learner reward per round" in printed and (out / "exploit.png").stat().st_size > 1000
    records = list(read_records(out / "transcripts" / "iter-000000.jsonl.gz"))
    # one learner seat per game, the frozen bot in the other three
    assert all(sum(s.learner for s in r.seats) == 1 for r in records)
    assert {s.agent for r in records for s in r.seats if not s.learner} == {"bot:conditional"}


def test_exploit_names_its_objective_in_the_default_folder(tmp_path, monkeypatch):
    from detente.cli import default_run_dir

    monkeypatch.chdir(tmp_path)
    assert "objectivespite" in default_run_dir(
        "exploit-ipd", ["target=bot:x", "objective=spite"], 0
    )
    assert (
        Path(default_run_dir("exploit-ipd", ["target=bot:x"], 0)).name
        == "exploit-ipd-targetbot_x-s0"
    )
