"""Face-off: the matrix, its JSON, the CLI, and SPEC §1 reference payoffs through the runner."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from detente.evaluate.faceoff import faceoff
from detente.evaluate.stats import mean_ci95
from detente.policies.bots import make_bot
from detente.protocol import make_protocol


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
        [sys.executable, "-m", "detente.cli", "faceoff", "--game", "ipd", "--agents",
         "bot:tit-for-tat,bot:always-defect,bot:random", "--games", "10", "--json", str(out)],
        capture_output=True, text=True, check=True,
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
        capture_output=True, text=True,
    )
    assert proc.returncode == 2 and "no bot 'nope'" in proc.stderr
