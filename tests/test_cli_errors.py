"""Where one line is due, one line (issue 19): each mistake below exits with status 1 and a single
``detente: error: ...`` line naming the file or value, never a traceback, and before any work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from detente.lm.adapters import write_adapter
from detente.lm.models import load_model, save_atomically


def detente(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "detente.cli", *args],
        capture_output=True, text=True, timeout=300, **options,
    )  # fmt: skip


def one_error_line(done: subprocess.CompletedProcess, *fragments: str) -> str:
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("detente: error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: 0.1\n  gamma: [0.9\nseed: 1\n")
    one_error_line(detente("train", str(bad), "--out", str(tmp_path / "run")), str(bad), "line")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    one_error_line(detente("train", str(listed)), str(listed), "mapping")


def test_train_refuses_an_out_that_is_a_file_and_cuda_without_a_gpu(tmp_path, tiny_overrides):
    taken = tmp_path / "taken"
    taken.write_text("not a run")
    one_error_line(detente("train", "ipd-naive-tiny", *tiny_overrides, "--out", str(taken)),
                   str(taken), "is a file")  # fmt: skip
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    one_error_line(
        detente("train", "ipd-naive-tiny", *tiny_overrides, "device=cuda", "--out",
                str(tmp_path / "run")),
        "device=cuda", "no CUDA device",
    )  # fmt: skip


def test_a_truncated_adapter_or_transcript_is_named(trained_ipd_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_ipd_run, run)
    weights = next(run.glob("checkpoints/iter-*/adapter/adapter_model.safetensors"))
    (run / "checkpoints" / "latest").write_text(weights.parent.parent.name)
    weights.write_bytes(weights.read_bytes()[:64])
    one_error_line(
        detente("faceoff", "--game", "ipd", "--agents", f"run:{run},bot:grim", "--games", "1"),
        str(weights.parent), "cannot read the adapter",
    )  # fmt: skip
    transcript = next(run.glob("transcripts/*.jsonl.gz"))
    transcript.write_bytes(transcript.read_bytes()[:-30])
    one_error_line(detente("report", str(transcript)), str(transcript))


def test_outputs_are_checked_before_the_games_are_played(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    arguments = ["faceoff", "--game", "ipd", "--agents", "bot:grim,bot:tit-for-tat"]
    start = time.monotonic()
    for flag in ("--json", "--csv", "--heatmap", "--transcripts"):
        one_error_line(detente(*arguments, flag, str(a_file / "out")), flag, str(a_file))
    one_error_line(detente(*arguments, "--json", str(tmp_path)), "is a folder")
    assert time.monotonic() - start < 120
    missing = tmp_path / "new" / "folder" / "m.json"  # a missing folder is made, not fatal
    done = detente(*arguments, "--games", "2", "--json", str(missing))
    assert done.returncode == 0 and missing.is_file()


def test_a_human_agent_without_a_terminal_is_one_line():
    def close_stdin() -> None:
        os.close(0)

    closed = detente("play", "--game", "ipd", "--opponent", "bot:grim", preexec_fn=close_stdin)
    one_error_line(closed, "standard input is closed")
    ended = detente("faceoff", "--game", "ipd", "--agents", "human,bot:grim", "--games", "1",
                    stdin=subprocess.DEVNULL)  # fmt: skip
    one_error_line(ended, "human player stopped")


def test_a_shared_cache_is_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        model, tokenizer = load_model("tiny-test")
        save_atomically(model, tokenizer, tmp_path / "cache" / "models" / "m")
        write_adapter_from(model, tmp_path / "adapter")
    finally:
        os.umask(old)
    for root in (tmp_path / "cache" / "models" / "m", tmp_path / "adapter"):
        for path in [root, *root.rglob("*")]:
            mode = path.stat().st_mode & 0o777
            assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


def write_adapter_from(model, path: Path) -> None:
    from peft import LoraConfig

    weights = {"base_model.model.lm_head.lora_A.weight": torch.zeros(2, 2)}
    write_adapter(LoraConfig(r=2, target_modules=["lm_head"]), weights, path)
