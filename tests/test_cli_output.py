"""What the command line prints when its output is a file (issue 17, point 5): one plain line per
iteration, no carriage returns, no library warnings."""

from __future__ import annotations

import os
import subprocess
import sys


def test_train_into_a_file_prints_one_line_per_iteration(tmp_path, tiny_overrides):
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # warnings would show, were they not quieted
    done = subprocess.run(
        [sys.executable, "-m", "detente.cli", "train", "ipd-naive-tiny", *tiny_overrides,
         "train.iterations=2", "eval.games=1", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    progress = [line for line in lines if line.startswith("iteration ")]
    assert [line.split(":")[0] for line in progress] == ["iteration 1/2", "iteration 2/2"]
    assert "reward" in progress[0] and progress[0].endswith(" s)")
    assert "Warning" not in done.stderr, done.stderr
