"""Rollout scaling with Ray workers: the same iterations played in-process and by 1, 2, ... actors.

Each setting builds a trainer of the ``ipd-naive-tiny`` preset (``--model``, ``--games`` games of
``--rounds`` rounds per iteration), plays one warm-up rollout (actors start, load the model and
receive the adapters), then times ``--iterations`` rollouts. A rollout includes the adapter sync
(the live adapter is trainable, so every rollout ships a new version). Records are checked equal
across settings (same seeds, same games). Ray runs locally on ``--cpus`` CPUs; each actor gets one
CPU and one torch thread, as does the in-process trainer.

    python -m benchmarks.ray_scaling [--workers 0,1,2] [--games 32] [--out PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import ray
import torch

from detente.config import load_config
from detente.train.trainer import Trainer


def measure(args: argparse.Namespace, workers: int, run_dir: Path) -> tuple[dict, list]:
    config = load_config(
        "ipd-naive-tiny",
        [
            f"model.name={args.model}",
            f"train.games_per_iteration={args.games}",
            f"game.options.rounds={args.rounds}",
            f"runtime.workers={workers}",
        ],
    )
    start = time.perf_counter()
    trainer = Trainer.create(config, run_dir)
    trainer.rollout(0)  # warm-up: actors start, load the model, receive the adapters
    warm = time.perf_counter() - start
    records, seconds = [], []
    for iteration in range(1, args.iterations + 1):
        t0 = time.perf_counter()
        records.append(trainer.rollout(iteration))
        seconds.append(time.perf_counter() - t0)
    trainer.rollouts.close()
    best = min(seconds)
    row = {
        "workers": workers,
        "games": args.games,
        "rounds": args.rounds,
        "startup_s": round(warm, 2),
        "rollout_s_best": round(best, 3),
        "rollout_s_mean": round(sum(seconds) / len(seconds), 3),
        "games_per_s": round(args.games / best, 2),
    }
    return row, [[r.to_json() for r in batch] for batch in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-test")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    parser.add_argument("--games", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--out", help="write the table as JSON here")
    parser.add_argument("--runs", default="/tmp/detente-ray-scaling")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    rows, reference = [], None
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            run_dir = Path(args.runs) / f"w{workers}-{time.time_ns()}"
            row, records = measure(args, workers, run_dir)
            if reference is None:
                reference = records
            row["same_records_as_first"] = _same(records, reference)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        ray.shutdown()
    base = rows[0]["rollout_s_best"]
    print(
        f"\n{args.model}, ipd, {args.games} games x {args.rounds} rounds per rollout, "
        f"best of {args.iterations}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs visible, Ray on {args.cpus}"
    )
    print("| workers | rollout s | games/s | vs first | start-up s | same records |")
    print("|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['workers']} | {row['rollout_s_best']:.2f} | {row['games_per_s']:.1f} | "
            f"{base / row['rollout_s_best']:.2f}x | {row['startup_s']:.1f} | "
            f"{'yes' if row['same_records_as_first'] else 'NO'} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


def _same(a: list, b: list) -> bool:
    """Equal records, log-probs compared to 1e-4 (float rounding differs across processes)."""

    def strip(batches: list) -> tuple[list, list]:
        batches, logprobs = copy.deepcopy(batches), []
        for batch in batches:
            for record in batch:
                for seat in record["seats"]:
                    for turn in seat["turns"]:
                        logprobs += turn["logprobs"]
                        turn["logprobs"] = None
        return batches, logprobs

    (exact_a, logp_a), (exact_b, logp_b) = strip(a), strip(b)
    close = all(abs(x - y) <= 1e-4 for x, y in zip(logp_a, logp_b, strict=True))
    return exact_a == exact_b and close


if __name__ == "__main__":
    main()
