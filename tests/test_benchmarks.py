"""The benchmark scripts run (at toy sizes, on the test model): no timings are asserted."""

from __future__ import annotations

from dataclasses import replace

from benchmarks import rollout_throughput, train_throughput


def test_train_throughput_measures_a_step() -> None:
    row = train_throughput.measure("tiny-test", seqs=2, length=24, every=4, steps=1, bf16=False)
    assert row["action_tokens_per_s"] > 0 and row["gflops"] > 0


def test_rollout_benchmark_plays_both_ways() -> None:
    plan = rollout_throughput.plan_for("tiny-test", quick=True)
    plan = replace(
        plan,
        concurrency={"ipd": (2,)},
        naive_games=1,
        scaling_games=0,
        scaling_rounds=(),
        rounds=2,
        repeats=1,
    )
    rows, series = rollout_throughput.measure(plan)
    assert [r["games"] for r in rows] == [2] and not series
    assert rows[0]["engine_games_per_s"] > 0 and rows[0]["naive_games_per_s"] > 0


def test_gpu_check_runs_at_toy_size_with_torch_transformers_and_peft_only(tmp_path) -> None:
    """benchmarks/gpu_check.py in a process where detente's other dependencies are missing (as
    on the lent GPU machine): every check within float32 tolerance, the numbers reported."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "gpu_check.json"
    args = [
        "--size", "toy", "--device", "cpu", "--rows", "6", "--tokens", "8",
        "--rollout-rows", "4", "--rollout-tokens", "8", "--train-seqs", "2",
        "--train-length", "32", "--steps", "1", "--out", str(out),
    ]
    script = (
        "import sys\n"
        "for name in ('pydantic', 'pydantic_core', 'gguf', 'fastapi', 'openai', 'ray'):\n"
        "    sys.modules[name] = None  # import fails, as where it is not installed\n"
        f"sys.argv = ['gpu_check', *{args!r}]\n"
        "from benchmarks import gpu_check\n"
        "gpu_check.main()\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"] and report["dtype"] == "float32"
    assert report["mixed_adapters"]["equal_share"] == 1.0
    assert report["mixed_adapters"]["adapter_changes_replies"] > 0
    assert abs(report["on_policy"]["mean_ratio"] - 1) < 1e-4
    assert report["rollout"]["tokens_per_s"] > 0 and report["training"]["mfu_vs_matmul"] > 0
