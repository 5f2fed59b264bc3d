"""What `detente faceoff` prints and writes (issue 17, point 10)."""

from __future__ import annotations

import csv
import json

import pytest

from detente.cli import main

AGENTS = "bot:tit-for-tat,bot:always-defect"


def test_zero_games_is_an_error_not_a_table(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["faceoff", "--game", "ipd", "--agents", AGENTS, "--games", "0"])
    assert stopped.value.code != 0
    captured = capsys.readouterr()
    assert "not a positive number" in captured.err and "row vs column" not in captured.out


def test_the_table_shows_the_measures_the_diagonal_and_the_outputs(tmp_path, capsys):
    paths = {flag: tmp_path / f"f.{flag}" for flag in ("json", "csv")}
    transcripts = tmp_path / "games.jsonl.gz"
    args = ["faceoff", "--game", "ipd", "--agents", AGENTS, "--games", "1",
            "--json", str(paths["json"]), "--csv", str(paths["csv"]),
            "--transcripts", str(transcripts)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "diagonal: each agent against a copy of itself (self-play)" in out
    for measure in ("coop_rate", "p_coop_after_c", "p_coop_after_d"):
        assert f"{measure} of the row agent" in out
    assert f"wrote {transcripts} (4 games)" in out
    assert "1 game per seat order" in out
    # a single self-play game has no interval: the mean alone in the table, null / empty in files
    data = json.loads(paths["json"].read_text())
    rows = list(csv.DictReader(paths["csv"].open()))
    for i, row in enumerate(data["agents"]):
        for j, column in enumerate(data["agents"]):
            (line,) = [r for r in rows if r["row"] == row and r["column"] == column]
            for key, matrix in [("ci95", data["ci95"]),
                                *((k, m) for k, m in data["measures"].items())]:  # fmt: skip
                value = matrix[i][j]
                assert (line[key] == "") == (value is None), (row, column, key)
                if value is not None:
                    assert float(line[key]) == pytest.approx(value)
    assert data["ci95"][0][0] is None  # tit-for-tat's self-play: one game
