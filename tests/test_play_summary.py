"""`detente play`'s end of game (issue 17, point 11): the last round's moves before "Game over",
a running score, plurals."""

from __future__ import annotations

import subprocess
import sys

from detente.cli import plural


def test_the_last_round_and_a_running_score_are_shown():
    moves = "A\nB\n" + "A\n" * 7 + "B\n"
    done = subprocess.run(
        [sys.executable, "-m", "detente.cli", "play", "--game", "ipd", "--opponent",
         "bot:tit-for-tat"], input=moves, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    last = out.index("last round: you played D, bot:tit-for-tat played C")
    assert last < out.index("=== Game over ===")
    assert "round 2: you 5, bot:tit-for-tat 0 (score: you 8, bot:tit-for-tat 3)" in out
    assert "round 10: you 5, bot:tit-for-tat 0 (score: you 31, bot:tit-for-tat 26)" in out


def test_plurals():
    assert [plural(1, "game"), plural(2, "game"), plural(1, "reply"), plural(3, "reply")] == [
        "1 game", "2 games", "1 reply", "3 replies"]  # fmt: skip


def test_quit_keeps_the_transcript_so_far(tmp_path):
    from detente.rollout.records import read_records

    path = tmp_path / "t.jsonl.gz"
    done = subprocess.run(
        [sys.executable, "-m", "detente.cli", "play", "--game", "ipd", "--opponent",
         "bot:tit-for-tat", "--transcript", str(path)], input="A\nB\nA\n/quit\n",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"wrote {path} (the game as far as it went: 3 rounds)" in done.stdout
    (record,) = read_records(path)
    assert len(record.rewards) == 3 and record.seats[0].agent == "human"
