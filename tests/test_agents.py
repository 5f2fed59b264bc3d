"""A ``run:`` agent plays as it was trained (issue 17, point 1): its prompt style, move
constraint and game options in faceoff / play / serve, its sampling settings everywhere; flags
override and say so."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import openai
import pytest

from detente.agents import as_trained, make_agent
from detente.cli import main
from detente.games import Kind
from detente.policies.base import Policy, Reply, Request
from detente.protocol import make_protocol
from detente.rollout.records import read_records
from detente.serve import create_app, serve_in_thread


def test_settings_come_from_the_run_and_flags_override_with_a_note(trained_ipd_run: Path):
    spec = f"run:{trained_ipd_run}"
    settings = as_trained([spec, "bot:tit-for-tat"])  # ipd-adalign-tiny: compact, constrained
    assert (settings.style, settings.constrain_moves) == ("compact", True)
    assert settings.options == {"rounds": 3}
    assert settings.notes and "as " + spec + " trained" in settings.notes[0]
    flagged = as_trained([spec], style="full", constrain_moves=False)
    assert (flagged.style, flagged.constrain_moves) == ("full", False)
    assert any("--style full, but" in n and "compact" in n for n in flagged.notes)
    assert any("--constrain-moves off, but" in n for n in flagged.notes)
    plain = as_trained(["bot:tit-for-tat", "bot:grim"])
    assert (plain.style, plain.constrain_moves, plain.notes) == ("full", False, ())


def test_a_run_agent_samples_with_the_runs_settings(trained_ipd_run: Path):
    policy = make_agent(f"run:{trained_ipd_run}", "ipd")
    # tiny scale: 32-token messages; ipd preset: 8-token moves (the defaults: 96 and 16).
    assert policy.batcher.sampling[Kind.MOVE].max_new_tokens == 8
    assert policy.batcher.sampling[Kind.MESSAGE].max_new_tokens == 32
    assert policy.batcher.engine is make_agent("lm:tiny-test", "ipd").batcher.engine  # one engine


def test_faceoff_plays_a_run_as_trained(trained_ipd_run: Path, tmp_path: Path, capsys):
    spec = f"run:{trained_ipd_run}"
    out = tmp_path / "games.jsonl.gz"
    args = ["faceoff", "--game", "ipd", "--agents", f"{spec},bot:tit-for-tat", "--games", "1",
            "--transcripts", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "style compact, constrained moves on: as" in printed
    records = list(read_records(out))
    assert all(r.num_rounds == 3 for r in records)  # the run's game options
    turns = [t for r in records for s in r.seats if s.agent == spec for t in s.turns]
    assert turns and all(t.constrained and not t.invalid for t in turns)
    assert main([*args[:-2], "--style", "full"]) == 0
    assert "note: --style full, but" in capsys.readouterr().out


def test_play_uses_the_runs_settings(trained_ipd_run: Path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("A\nA\nA\n"))
    code = main(["play", "--game", "ipd", "--opponent", f"run:{trained_ipd_run}"])
    printed = capsys.readouterr().out
    assert "style compact, constrained moves on: as" in printed, printed
    assert code == 0 and "round 3:" in printed and "did not parse" not in printed


class Recorder(Policy):
    name = "lm:recorder"
    supports_constrained = True

    def __init__(self) -> None:
        self.seen: list[Request] = []

    def act(self, requests):
        self.seen += requests
        return [Reply(text="<A>") for _ in requests]


@pytest.mark.parametrize("constrain", [True, False])
def test_serve_constrains_moves_when_asked(constrain: bool):
    policy = Recorder()
    app = create_app(policy, "ipd", make_protocol("ipd"), constrain_moves=constrain)
    with serve_in_thread(app) as url:
        api = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=10)
        extension = {"game": "ipd", "player": 0, "kind": "move", "events": []}
        api.chat.completions.create(model="lm:recorder", messages=[{"role": "user", "content": "?"}],
                                    extra_body={"detente": extension})  # fmt: skip
    assert [r.constrained for r in policy.seen] == [constrain]
