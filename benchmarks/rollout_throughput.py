"""Rollout throughput: the batched engine against a naive one-request-at-a-time loop.

Both sides play the same games with the same LoRA adapter in both seats. The engine side is
``LMPolicy`` (one ``generate`` per step for every pending seat, KV caches kept per session); the
naive side is :class:`NaivePolicy` (each request alone: the whole chat rendered and encoded, then
transformers' ``model.generate``). The naive loop is sequential, so its rate does not depend on
how many games run at once: it plays a few games and its per-game rate is reported at every
concurrency (stated in the output). Speeds are ratios measured in this one run.

    python -m benchmarks.rollout_throughput [--quick] [--models tiny,smollm2-135m] [--games ipd]
        [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import transformers

from detente.games import Kind, make_config, make_game
from detente.lm.engine import Engine
from detente.lm.models import load_engine, registered_models
from detente.policies.base import Policy, Reply, Request
from detente.policies.lm import LMBatcher, LMPolicy
from detente.protocol import make_protocol
from detente.rollout.runner import InvalidReplyConfig, Match, play

ADAPTER = "live"
# No re-asks: every decision is exactly one generation on both sides, whatever the reply.
ONE_TRY = InvalidReplyConfig(free_retries=0, constrained_retry=False)
SMOLLM2 = "smollm2-135m"


@dataclass(frozen=True)
class Plan:
    """What to measure for one model."""

    model: str
    style: str  # protocol style: compact for the embedded models, full for real LLMs
    concurrency: dict[str, tuple[int, ...]]  # game → numbers of games played at once
    rounds: int
    naive_games: int  # games the naive loop plays per game type
    scaling_games: int  # batch size of the rounds series (0: no series)
    scaling_rounds: tuple[int, ...]
    move_tokens: int  # reply budgets (max new tokens) of a move and of a chat message
    message_tokens: int
    repeats: int  # engine runs per measurement (the fastest counts: the same games each time)


@dataclass(frozen=True)
class Run:
    """One timed rollout."""

    seconds: float
    games: int
    new_tokens: int
    invalid_rate: float

    @property
    def games_per_s(self) -> float:
        return self.games / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds


class NaivePolicy(Policy):
    """One request at a time: render and encode the whole chat, then ``model.generate``.

    Samples like the engine (temperature 1, no top-k/top-p) from the global RNG seeded with the
    request's seed; stops at the engine's stop tokens or the reply budget.
    """

    def __init__(self, engine: Engine, adapter: str | None, budgets: dict[Kind, int]) -> None:
        self.engine, self.adapter, self.budgets = engine, adapter, budgets
        self.name = "naive"

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        with torch.inference_mode(), self.engine.use_adapter(self.adapter) as model:
            return [self._reply(model, request) for request in requests]

    def _reply(self, model: torch.nn.Module, request: Request) -> Reply:
        chat = self.engine.chat
        ids = self.engine.tokenizer(
            chat.render(request.messages), add_special_tokens=False, return_tensors="pt"
        )["input_ids"].to(self.engine.device)
        torch.manual_seed(request.seed)
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=self.budgets[request.kind],
            eos_token_id=sorted(chat.stop_ids),
            pad_token_id=chat.pad_id,
        )
        new = out[0, ids.shape[1] :].tolist()
        reply = new[:-1] if new and new[-1] in chat.stop_ids else new
        return Reply(
            text=chat.decode(reply), prompt_ids=tuple(ids[0].tolist()), token_ids=tuple(new)
        )


def small_model() -> str:
    """``tiny`` where registered, else ``tiny-test``."""
    return "tiny" if "tiny" in registered_models() else "tiny-test"


def plan_for(model: str, quick: bool) -> Plan:
    """Sizes that keep the whole run near 10 minutes (2 with ``--quick``) on a 2-core CPU.

    SmolLM2 runs about 100 times slower than the small model on such a CPU: it plays the same
    concurrencies and rounds, but the naive loop times a single game and each measurement runs
    once (the full SmolLM2 run takes about half an hour; ``--quick`` plays a few short games).
    """
    if model == SMOLLM2:
        plan = Plan(
            model=model,
            style="full",
            concurrency={"ipd": (32, 64), "trust-split": (32, 64)},
            rounds=10,
            naive_games=1,
            scaling_games=0,
            scaling_rounds=(),
            move_tokens=8,
            message_tokens=32,
            repeats=1,
        )
        quick_sizes = {"ipd": (4,), "trust-split": (2,)}
        return replace(plan, concurrency=quick_sizes, rounds=2) if quick else plan
    plan = Plan(
        model=model,
        style="compact",
        concurrency={"ipd": (32, 64), "trust-split": (32, 64)},
        rounds=10,
        naive_games=4,
        scaling_games=32,
        scaling_rounds=(5, 10, 20),
        move_tokens=16,
        message_tokens=48,
        repeats=2,
    )
    return replace(plan, naive_games=2, scaling_games=16) if quick else plan


def rollout(policy: Policy, game: str, games: int, rounds: int, style: str, seed: int) -> Run:
    """Play ``games`` games of ``rounds`` rounds with ``policy`` in both seats."""
    config = make_config(game, {"rounds": rounds})
    protocol = make_protocol(game, style, config)
    matches = [
        Match(make_game(game, config, seed + i), (policy, policy), f"{game}-{seed}-{i}")
        for i in range(games)
    ]
    start = time.perf_counter()
    records = play(matches, protocol, ONE_TRY, seed=seed)
    seconds = time.perf_counter() - start
    turns = [t for r in records for s in r.seats for t in s.turns]
    tokens = sum(len(t.token_ids) for t in turns)
    return Run(seconds, games, tokens, sum(t.invalid for t in turns) / len(turns))


def fastest(plan: Plan, policy: Policy, game: str, games: int, rounds: int, seed: int) -> Run:
    """The fastest of ``plan.repeats`` identical rollouts (the least disturbed by the machine)."""
    runs = [rollout(policy, game, games, rounds, plan.style, seed) for _ in range(plan.repeats)]
    return min(runs, key=lambda run: run.seconds)


def measure(plan: Plan) -> tuple[list[dict], list[dict]]:
    """Throughput rows (engine vs naive) and the rounds series of one model."""
    start = time.perf_counter()
    engine = load_engine(plan.model)
    engine.add_adapter(ADAPTER, r=8, alpha=16)
    budgets = {Kind.MOVE: plan.move_tokens, Kind.MESSAGE: plan.message_tokens}
    batcher = LMBatcher(
        engine, max_message_tokens=plan.message_tokens, max_move_tokens=plan.move_tokens
    )
    fast = LMPolicy(batcher, ADAPTER, "engine")
    naive = NaivePolicy(engine, ADAPTER, budgets)
    print(f"[{plan.model}] loaded in {time.perf_counter() - start:.1f}s", flush=True)
    seed = 1000
    throughput = []
    for game, sizes in plan.concurrency.items():
        rollout(fast, game, 2, 1, plan.style, seed=1)  # warm-up
        rollout(naive, game, 1, 1, plan.style, seed=1)
        slow = rollout(naive, game, plan.naive_games, plan.rounds, plan.style, seed)
        for games in sizes:
            run = fastest(plan, fast, game, games, plan.rounds, seed)
            throughput.append(
                {
                    "model": plan.model,
                    "game": game,
                    "rounds": plan.rounds,
                    "games": games,
                    "engine_seconds": run.seconds,
                    "engine_tokens_per_s": run.tokens_per_s,
                    "engine_games_per_s": run.games_per_s,
                    "engine_invalid_rate": run.invalid_rate,
                    "naive_games_timed": slow.games,
                    "naive_seconds": slow.seconds,
                    "naive_tokens_per_s": slow.tokens_per_s,
                    "naive_games_per_s": slow.games_per_s,
                    "naive_invalid_rate": slow.invalid_rate,
                    "speedup_games_per_s": run.games_per_s / slow.games_per_s,
                    "speedup_tokens_per_s": run.tokens_per_s / slow.tokens_per_s,
                }
            )
            print(
                f"[{plan.model}] {game} x{games}: engine {run.seconds:.1f}s, naive "
                f"{slow.seconds:.1f}s for {slow.games} games, "
                f"speedup {throughput[-1]['speedup_games_per_s']:.1f}x",
                flush=True,
            )
    scaling = []
    for rounds in plan.scaling_rounds:
        run = fastest(plan, fast, "ipd", plan.scaling_games, rounds, seed)
        slow = rollout(naive, "ipd", plan.naive_games, rounds, plan.style, seed)
        scaling.append(
            {
                "model": plan.model,
                "game": "ipd",
                "games": plan.scaling_games,
                "rounds": rounds,
                "seconds": run.seconds,
                "seconds_per_round": run.seconds / rounds,
                "new_tokens": run.new_tokens,
                "naive_seconds_per_game_round": slow.seconds / slow.games / rounds,
            }
        )
        print(f"[{plan.model}] ipd x{plan.scaling_games}, {rounds} rounds: {run.seconds:.2f}s")
    return throughput, scaling


def markdown(throughput: list[dict], scaling: list[dict]) -> str:
    """The results as markdown tables."""
    lines = [
        "| model | game | games | engine tok/s | engine games/s | naive tok/s | naive games/s "
        "| speedup (games/s) | speedup (tok/s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in throughput:
        lines.append(
            f"| {r['model']} | {r['game']} ({r['rounds']} rounds) | {r['games']} "
            f"| {r['engine_tokens_per_s']:.0f} | {r['engine_games_per_s']:.2f} "
            f"| {r['naive_tokens_per_s']:.0f} | {r['naive_games_per_s']:.3f} "
            f"| {r['speedup_games_per_s']:.1f}x | {r['speedup_tokens_per_s']:.1f}x |"
        )
    timed = sorted({(r["model"], r["naive_games_timed"]) for r in throughput})
    lines.append("")
    lines.append(
        "Naive: one request at a time, so its rate does not depend on concurrency; measured on "
        + ", ".join(f"{n} game(s) per game type for {m}" for m, n in timed)
        + " and used at every concurrency."
    )
    if scaling:
        lines += [
            "",
            "| model | game | games | rounds | engine s | engine s/round | vs first | "
            "naive s/(game·round) | vs first |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in scaling:
            first = next(s for s in scaling if s["model"] == r["model"])
            engine = r["seconds_per_round"] / first["seconds_per_round"]
            naive = r["naive_seconds_per_game_round"] / first["naive_seconds_per_game_round"]
            lines.append(
                f"| {r['model']} | {r['game']} | {r['games']} | {r['rounds']} "
                f"| {r['seconds']:.2f} | {r['seconds_per_round']:.3f} | {engine:.2f} "
                f"| {r['naive_seconds_per_game_round']:.3f} | {naive:.2f} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller sizes (about 2 minutes).")
    parser.add_argument(
        "--models",
        default=None,
        help=f"Comma-separated models (default: the small model, plus {SMOLLM2} unless --quick).",
    )
    parser.add_argument(
        "--games",
        default=None,
        help="Comma-separated game types to measure (default: every one in the plan).",
    )
    parser.add_argument("--out", default="benchmarks/results.json", help="Where to write JSON.")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (0: torch's default). One thread keeps timings steady on a "
        "shared machine, where idle-spinning threads of a busy core slow torch down badly.",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    models = (
        args.models.split(",")
        if args.models
        else [small_model()] + ([] if args.quick else [SMOLLM2])
    )
    start = time.perf_counter()
    throughput, scaling = [], []
    plans = [plan_for(m, args.quick) for m in models]
    if args.games:
        chosen = args.games.split(",")
        known = {g for p in plans for g in p.concurrency}
        if unknown := sorted(set(chosen) - known):
            parser.error(f"--games: unknown {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        plans = [
            replace(p, concurrency={g: n for g, n in p.concurrency.items() if g in chosen})
            for p in plans
        ]
    for plan in plans:
        rows, series = measure(plan)
        throughput += rows
        scaling += series
    table = markdown(throughput, scaling)
    print()
    print(table)
    result = {
        "meta": {
            "quick": args.quick,
            "seconds": time.perf_counter() - start,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "plans": [asdict(p) for p in plans],
        },
        "throughput": throughput,
        "scaling": scaling,
        "markdown": table,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out} in {result['meta']['seconds']:.0f}s")


if __name__ == "__main__":
    main()
