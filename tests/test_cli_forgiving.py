"""A command line that forgives mistakes (issue 17, points 6-8): one line with a hint, nothing
half-made left behind, Ctrl-C says how to go on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from detente.cli import main


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("detente: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_model_typo_leaves_no_half_made_run(tmp_path, tiny_overrides, capsys):
    run = tmp_path / "runs" / "r"
    args = ["train", "ipd-naive-tiny", *tiny_overrides, "train.iterations=1", "eval.bots=[]"]
    assert main([*args, "model.name=tiny-tset", "--out", str(run)]) == 1
    assert "tiny-test" in error_line(capsys)
    assert not run.exists() and not run.parent.exists()  # nothing left behind
    assert main([*args, "--out", str(run)]) == 0  # the corrected command just works


def test_report_of_a_folder_without_a_run_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 1
    assert "no such run directory" in error_line(capsys)
    assert main(["report", str(tmp_path)]) == 1
    assert "holds no run" in error_line(capsys)


def test_ctrl_c_says_where_the_run_stopped_and_how_to_go_on(tmp_path, tiny_overrides):
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "detente.cli", "train", "ipd-naive-tiny", *tiny_overrides,
         "train.iterations=50", "eval.bots=[]", "logging.backends=[]", "--out", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not (run / "checkpoints" / "latest").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err, err
    (line,) = [x for x in err.splitlines() if x.startswith("stopped at iteration")]
    assert line.endswith(f"continue with `detente resume {run}`")
    done = int(line.split()[3])
    assert done >= 1 and (run / "checkpoints" / f"iter-{done:06d}").is_dir()
