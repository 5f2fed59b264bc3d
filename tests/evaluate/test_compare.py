"""`detente compare RUN RUN ...` (issue 17, point 4): curves overlaid, start → end per run, the
configs diffed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detente.config import dump_config, load_config
from detente.evaluate.compare import compare_runs, write_comparison


def fake_run(folder: Path, overrides: list[str], rewards: list[float]) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(dump_config(load_config("ipd-naive-tiny", overrides)))
    lines = [{"iteration": i, "reward": r, "coop_rate": r / 3, "invalid_rate": 0.0}
             for i, r in enumerate(rewards)]  # fmt: skip
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


def test_compare_two_runs(tmp_path):
    a = fake_run(tmp_path / "a" / "run", ["train.lr=0.001"], [1.0, 1.5, 2.0])
    b = fake_run(tmp_path / "b" / "run", ["train.lr=0.01", "seed=1"], [1.2, 2.8])
    comparison = compare_runs([a, b])
    assert comparison.labels == ["a/run", "b/run"]
    assert comparison.differences == {"seed": [0, 1], "train.lr": [0.001, 0.01]}
    rows = {(r[0], r[1]): r[2:] for r in comparison.table_rows()}
    assert rows[("a/run", "reward")] == ["1.000", "2.000", "1 → 3"]
    assert rows[("b/run", "reward")] == ["1.200", "2.800", "1 → 2"]
    text = comparison.text()
    assert "config differences:" in text and "train.lr: a/run 0.001, b/run 0.01" in text
    page = write_comparison(comparison, tmp_path / "out").read_text()
    assert "Config differences" in page and "train.lr" in page
    assert (tmp_path / "out" / "plots" / "reward.png").is_file()


def test_compare_needs_runs(tmp_path):
    a = fake_run(tmp_path / "a", [], [1.0])
    with pytest.raises(ValueError, match="at least two"):
        compare_runs([a])
    with pytest.raises(ValueError, match="no such run directory"):
        compare_runs([a, tmp_path / "missing"])


def test_the_compare_command(tmp_path, capsys):
    from detente.cli import main

    a = fake_run(tmp_path / "a", [], [1.0, 2.0])
    b = fake_run(tmp_path / "b", ["train.lr=0.5"], [1.0, 1.1])
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "config differences:" in out and "train.lr: a 0.002, b 0.5" in out
    assert (tmp_path / "cmp" / "compare.html").is_file() and "wrote" in out
