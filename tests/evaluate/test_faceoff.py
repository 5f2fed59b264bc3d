"""Face-off: the matrix, its JSON, the CLI, SPEC §1 reference payoffs through the runner, and a
trained tiny run against bots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from peft.utils import load_peft_weights

from detente.agents import make_agent
from detente.cli import main
from detente.evaluate.faceoff import faceoff
from detente.evaluate.stats import mean_ci95
from detente.games import make_config
from detente.policies.bots import make_bot
from detente.policies.lm import LMPolicy
from detente.protocol import make_protocol
from detente.rollout.records import GameRecord, Turn


def run_faceoff(game: str, bots: list[str], games: int = 40):
    agents = [make_bot(game, b) for b in bots]
    result, _ = faceoff(game, agents, make_protocol(game), games, seed=0)
    return result


def test_ipd_reference_payoffs():
    result = run_faceoff("ipd", ["tit-for-tat", "always-defect"], games=5)
    assert np.allclose(result.mean_reward, [[3.0, 0.9], [1.4, 1.0]])
    assert np.allclose(result.ci95, 0.0)


def test_ci_matches_student_t():
    mean, half = mean_ci95([1.0, 2.0, 3.0, 4.0])
    # t_{0.975,3} = 3.182446; s = 1.290994; half = t s / 2
    assert mean == 2.5 and half == pytest.approx(3.182446 * 1.290994 / 2, rel=1e-5)
    assert mean_ci95([2.0, 2.0])[1] == 0.0


def test_cli_json_format(tmp_path):
    out = tmp_path / "f.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "detente.cli",
            "faceoff",
            "--game",
            "ipd",
            "--agents",
            "bot:tit-for-tat,bot:always-defect,bot:random",
            "--games",
            "10",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "bot:always-defect" in proc.stdout
    data = json.loads(out.read_text())
    assert data["agents"] == ["bot:tit-for-tat", "bot:always-defect", "bot:random"]
    assert data["games"] == 10
    assert len(data["mean_reward"]) == 3 and len(data["ci95"][0]) == 3
    assert data["mean_reward"][0][1] == pytest.approx(0.9)


def test_cli_bad_agent_is_a_clear_error():
    proc = subprocess.run(
        [sys.executable, "-m", "detente.cli", "faceoff", "--game", "ipd", "--agents", "bot:nope"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "no bot 'nope'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1  # one line, no traceback


BOTS = ("bot:tit-for-tat", "bot:always-defect")


def _turns(records: list[GameRecord], agent: str) -> list[Turn]:
    return [t for r in records for s in r.seats if s.agent == agent for t in s.turns]


def _loaded_weights(policy: LMPolicy, folder: Path) -> dict[str, torch.Tensor]:
    """The adapter weights that ``policy`` samples with, as the engine holds them."""
    assert policy.adapter is not None
    policy.batcher.engine.save_adapter(policy.adapter, folder)
    return load_peft_weights(str(folder))


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_trained_run_against_bots(trained_ipd_run, tmp_path):
    run = trained_ipd_run
    latest, first = (make_agent(spec, "ipd") for spec in (f"run:{run}", f"run:{run}@1"))
    assert isinstance(latest, LMPolicy) and isinstance(first, LMPolicy)
    checkpoint = load_peft_weights(str(run / "checkpoints" / "iter-000002" / "adapter"))
    snapshot = load_peft_weights(str(run / "pool" / "pool-000001"))
    assert _same_weights(_loaded_weights(latest, tmp_path / "latest"), checkpoint)
    assert _same_weights(_loaded_weights(first, tmp_path / "first"), snapshot)
    assert not _same_weights(checkpoint, snapshot)
    with pytest.raises(ValueError, match="no adapter of iteration 7; available: 1, 2$"):
        make_agent(f"run:{run}@7", "ipd")

    config, protocol = make_config("ipd", {"rounds": 3}), make_protocol("ipd", "compact")
    bots = [make_agent(spec, "ipd") for spec in BOTS]
    _, trained = faceoff("ipd", [latest, *bots], protocol, 2, config=config)
    _, base = faceoff("ipd", [make_agent("lm:tiny-test", "ipd"), *bots], protocol, 2, config=config)
    # The same seeds and base model: only the loaded adapter can change the run's replies.
    pairs = list(zip(_turns(trained, latest.name), _turns(base, "lm:tiny-test"), strict=True))
    assert any(
        t.token_ids != u.token_ids or not np.allclose(t.logprobs, u.logprobs, atol=0.05)
        for t, u in pairs
    )


def test_cli_faceoff_of_a_trained_run(trained_ipd_run, tmp_path, capsys):
    out = tmp_path / "faceoff.json"
    agents = ",".join((f"run:{trained_ipd_run}", *BOTS))
    args = ["faceoff", "--game", "ipd", "--agents", agents, "--games", "3", "--style", "compact"]
    assert main([*args, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["agents"] == agents.split(",") and data["games"] == 3
    for matrix in (data["mean_reward"], data["ci95"], *data["measures"].values()):
        assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert all(v is not None for row in data["measures"]["coop_rate"] for v in row)
    # bot against bot, in the run's 3-round games (its game options): tit-for-tat is exploited
    # once, then both defect
    bot_cells = [row[1:] for row in data["mean_reward"][1:]]
    assert np.allclose(bot_cells, [[3.0, 2 / 3], [7 / 3, 1.0]])
    assert np.allclose([row[1:] for row in data["ci95"][1:]], 0.0)
    # against always-defect every round pays S = 0 or P = 1; always-defect earns P = 1 or T = 5
    assert 0.0 <= data["mean_reward"][0][2] <= 1.0 <= data["mean_reward"][2][0] <= 5.0

    assert main(["faceoff", "--game", "ipd", "--agents", f"run:{trained_ipd_run}@9,bot:grim"]) == 1
    assert "no adapter of iteration 9; available: 1, 2" in capsys.readouterr().err


def test_n_player_cells_put_the_row_agent_among_copies_of_the_column_agent():
    """Public goods, 3 players: a free rider among two full contributors gets
    10 + 1.6·20/3, a full contributor among two free riders 1.6·10/3; self-play on the diagonal."""
    from detente.evaluate.faceoff import faceoff, seat_plans
    from detente.games import make_config
    from detente.policies.bots import make_bot
    from detente.protocol import make_protocol

    config = make_config("public-goods", {"players": 3, "rounds": 2})
    bots = [make_bot("public-goods", b) for b in ("free-rider", "full-contributor")]
    protocol = make_protocol("public-goods", config=config)
    result, records = faceoff("public-goods", bots, protocol, 2, config=config)
    assert len(seat_plans(2, 3)) == 2 + 6 and len(records) == 8 * 2
    assert {len(r.seats) for r in records} == {3}
    free, full = 0, 1
    assert result.mean_reward[free][full] == pytest.approx(10 + 1.6 * 20 / 3)
    assert result.mean_reward[full][free] == pytest.approx(1.6 * 10 / 3)
    assert result.mean_reward[free][free] == pytest.approx(10.0)
    assert result.mean_reward[full][full] == pytest.approx(16.0)
    assert result.measures["contribution_rate"][full][free] == 1.0


def test_a_mixed_population_rotates_through_the_seats():
    from detente.evaluate.faceoff import population_faceoff
    from detente.games import make_config
    from detente.policies.bots import make_bot
    from detente.protocol import make_protocol

    config = make_config("public-goods", {"players": 4, "rounds": 2})
    free, full = make_bot("public-goods", "free-rider"), make_bot("public-goods", "full-contributor")
    protocol = make_protocol("public-goods", config=config)
    result, records = population_faceoff("public-goods", [free, full, full, full], protocol, 3,
                                         config=config)  # fmt: skip
    assert len(records) == 4 * 3  # every rotation of the four seats, three games each
    assert {r.seats[0].agent for r in records} == {free.name, full.name}  # the free rider moves
    assert result.reward[free.name] == pytest.approx(10 + 1.6 * 30 / 4)
    assert result.reward[full.name] == pytest.approx(1.6 * 30 / 4)
    assert result.measures[free.name]["free_ride_rate"] == 1.0
    with pytest.raises(ValueError, match="has 4 seats; the population lists 2"):
        population_faceoff("public-goods", [free, full], protocol, 1, config=config)


def test_faceoff_command_plays_a_population(tmp_path, capsys):
    from detente.cli import main

    out = tmp_path / "pop.json"
    args = ["faceoff", "--game", "public-goods", "--population",
            "bot:free-rider,bot:conditional,bot:conditional,bot:conditional", "--games", "1",
            "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "bot:free-rider" in printed and "per rotation of the seats" in printed
    data = json.loads(out.read_text())
    assert data["lineup"][0] == "bot:free-rider" and set(data["reward"]) == {
        "bot:free-rider", "bot:conditional",
    }
    assert main(["faceoff", "--game", "ipd"]) == 1  # neither --agents nor --population
    assert "give --agents" in capsys.readouterr().err
