"""Terminal play: a person (here: lines on standard input) against a bot."""

from __future__ import annotations

import subprocess
import sys

from detente.rollout.records import read_records


def detente_play(args: list[str], stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "detente.cli", "play", *args],
        input=stdin, capture_output=True, text=True, timeout=60,
    )


def test_full_ipd_game_with_a_typo(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    moves = "A\nzzz\n" + "B\n" * 9
    proc = detente_play(["--game", "ipd", "--opponent", "bot:tit-for-tat", "--transcript", str(path)], moves)
    assert proc.returncode == 0, proc.stderr
    assert "Not understood" in proc.stdout and "Game over" in proc.stdout
    # A then nine B against tit-for-tat: 3 + 5 + 8 x 1 = 16 vs 3 + 0 + 8 = 11
    assert "you 16, bot:tit-for-tat 11" in proc.stdout
    (record,) = read_records(path)
    assert record.seats[0].agent == "human" and len(record.seats[0].turns) == 10


def test_quit_and_end_of_input_stop_cleanly():
    for stdin in ["A\n/quit\n", "A\n"]:
        proc = detente_play(["--game", "ipd", "--opponent", "bot:grim", "--seat", "bob"], stdin)
        assert proc.returncode == 0 and "Stopped" in proc.stdout
