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
