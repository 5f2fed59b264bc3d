"""Rollouts with and without the lockstep barrier: a faulty API, the language model, bots.

* **API**: Trust-and-Split games of a bot served through the API policy (``detente serve``'s
  app on 127.0.0.1 behind :class:`FaultyServer`) against a local bot. One call in three is a
  fault: one in six a reply slowed by ``--slow`` seconds (2), the others in turn an HTTP 500, a
  429 and a reply of the wrong format; the API policy retries with its defaults. Each
  configuration stops after ``--budget`` seconds (300, a bounded run): games/s counts the games
  finished by then.
* **LM**: the small model (``tiny`` where registered, else ``tiny-test``) in self-play, the
  runner's default re-asks of invalid replies, tokens/s and games/s (fastest of ``--repeats``
  runs, the two sides alternating), the records checked equal.
* **Bots**: scripted bots in self-play: what the scheduler's threads cost where replies take no
  time.

    python -m benchmarks.barrier_free [--games 16] [--budget 300] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.rollout_throughput import small_model
from detente.games import make_config, make_game
from detente.lm.models import load_engine
from detente.policies.api import ApiConfig, ApiPolicy
from detente.policies.base import PlayStopped, Policy, Reply, Request
from detente.policies.bots import make_bot
from detente.policies.lm import LMBatcher, LMPolicy
from detente.protocol import make_protocol
from detente.rollout.records import GameRecord
from detente.rollout.runner import Match, play
from detente.serve import create_app, serve_in_thread

SIDES = {"lockstep": True, "barrier-free": False}  # side → play's ``lockstep``
GAME = "trust-split"
SERVED, LOCAL = "honest", "liar"  # the bot behind the API, the one in this process


@dataclass
class FaultyServer:
    """ASGI middleware: per chat request, a seeded draw: a slow reply (``slow_share``), another
    fault (``fault_share``: 500, 429 and a wrong-format reply in turn), or the server's reply."""

    app: Any
    slow: float = 2.0
    slow_share: float = 1 / 6
    fault_share: float = 1 / 6
    seed: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._faults = itertools.cycle(("500", "429", "format"))

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/chat/completions":
            await self.app(scope, receive, send)
            return
        draw = self._rng.random()
        kind = (
            "slow"
            if draw < self.slow_share
            else next(self._faults)
            if draw < self.slow_share + self.fault_share
            else "ok"
        )
        self.counts[kind] += 1
        if kind == "slow":
            await asyncio.sleep(self.slow)
        if kind in ("500", "429"):
            await _respond(send, int(kind), {"error": {"message": "injected", "type": "error"}})
            return
        if kind == "format":
            message = {"role": "assistant", "content": "I would rather not say."}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            await _respond(send, 200, {
                "id": "injected", "object": "chat.completion", "created": 0, "model": "injected",
                "choices": [choice],
                "usage": {"prompt_tokens": 0, "completion_tokens": 6, "total_tokens": 6},
            })  # fmt: skip
            return
        await self.app(scope, receive, send)


async def _respond(send: Callable, status: int, payload: dict) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


class Deadline(Policy):
    """``inner``'s replies until ``at`` (``time.monotonic``), then ``PlayStopped``: the play
    stops and gives its games as far as they went."""

    def __init__(self, inner: Policy, at: float) -> None:
        self.inner, self.at, self.name = inner, at, inner.name

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        if time.monotonic() > self.at:
            raise PlayStopped("out of time")
        return self.inner.act(requests)


def _games(game: str, pairs: Sequence[tuple[Policy, Policy]], rounds: int) -> list[Match]:
    config = make_config(game, {"rounds": rounds})
    return [Match(make_game(game, config, k), p, f"{game}-{k}") for k, p in enumerate(pairs)]


def _timed_play(matches: Sequence[Match], game: str, lockstep: bool) -> tuple[float, list, bool]:
    """(seconds, records, stopped): the records so far if a policy stopped the play."""
    start = time.perf_counter()
    try:
        records, stopped = play(matches, make_protocol(game), seed=1, lockstep=lockstep), False
    except PlayStopped as error:
        records, stopped = error.records or [], True
    return time.perf_counter() - start, records, stopped


def _moves(records: Sequence[GameRecord]) -> list:
    """What was played (replies, actions, rewards), without the usage that faults change."""
    return [
        (r.rewards, [[(t.reply, t.action, t.token_ids) for t in s.turns] for s in r.seats])
        for r in records
    ]


def measure_api(
    games: int, rounds: int, budget: float, slow: float, backoff: float = 1.0
) -> list[dict]:
    """Both sides against the faulty server (a fresh one, same fault draws, per side)."""
    rows, played = [], {}
    config = make_config(GAME, {"rounds": rounds})
    for side, lockstep in SIDES.items():
        app = create_app(make_bot(GAME, SERVED), GAME, make_protocol(GAME), config=config)
        faulty = FaultyServer(app, slow=slow)
        with (
            serve_in_thread(faulty) as url,
            ApiPolicy(ApiConfig(model=f"bot:{SERVED}", base_url=url, backoff=backoff)) as api,
        ):
            local = Deadline(make_bot(GAME, LOCAL), time.monotonic() + budget)
            pairs = [(api, local) if k % 2 == 0 else (local, api) for k in range(games)]
            seconds, records, stopped = _timed_play(_games(GAME, pairs, rounds), GAME, lockstep)
        finished = [r for r in records if len(r.rewards) == rounds]
        usage: Counter[str] = Counter()
        for record in records:
            for seat in record.seats:
                if seat.agent == api.name:
                    for turn in seat.turns:
                        usage.update(turn.usage)
        played[side] = {r.game_id: r for r in finished}
        rows.append({
            "side": side, "games": games, "rounds": rounds, "seconds": seconds,
            "stopped_at_budget": stopped, "games_finished": len(finished),
            "games_per_s": len(finished) / seconds,
            "rounds_per_s": sum(len(r.rewards) for r in records) / seconds,
            "calls": dict(faulty.counts), "usage": dict(usage),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    both = sorted(set(played["lockstep"]) & set(played["barrier-free"]))
    same = _moves([played["lockstep"][g] for g in both]) == _moves(
        [played["barrier-free"][g] for g in both]
    )
    for row in rows:
        row["same_moves_in_games_both_finished"] = same
        row["games_both_finished"] = len(both)
    return rows


def measure_lm(model: str, games: int, rounds: int, repeats: int) -> list[dict]:
    """The small model in self-play, per game type, both sides, fastest of ``repeats``."""
    engine = load_engine(model)
    engine.add_adapter("live", r=8, alpha=16)
    policy = LMPolicy(LMBatcher(engine, max_message_tokens=48, max_move_tokens=16), "live", model)
    rows = []
    for game in ("ipd", "trust-split"):
        _timed_play(_games(game, [(policy, policy)] * 2, 1), game, False)  # warm-up
        best: dict[str, tuple[float, list]] = {}
        for _ in range(repeats):
            for side, lockstep in SIDES.items():
                seconds, records, _ = _timed_play(
                    _games(game, [(policy, policy)] * games, rounds), game, lockstep
                )
                if side not in best or seconds < best[side][0]:
                    best[side] = (seconds, records)
        same = _moves(best["lockstep"][1]) == _moves(best["barrier-free"][1])
        for side, (seconds, records) in best.items():
            turns = [t for r in records for s in r.seats for t in s.turns]
            rows.append({
                "side": side, "model": model, "game": game, "games": games, "rounds": rounds,
                "seconds": seconds, "games_per_s": games / seconds,
                "tokens_per_s": sum(len(t.token_ids) for t in turns) / seconds,
                "attempts_per_decision": sum(t.attempts for t in turns) / len(turns),
                "same_records": same,
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def measure_bots(games: int, rounds: int, repeats: int) -> list[dict]:
    """Scripted bots (a random and a deterministic one) in every game, both sides."""
    rows = []
    for game, names in (("ipd", ("random", "tit-for-tat")), ("trust-split", ("liar", "honest"))):
        a, b = (make_bot(game, n) for n in names)
        for side, lockstep in SIDES.items():
            seconds = min(
                _timed_play(_games(game, [(a, b)] * games, rounds), game, lockstep)[0]
                for _ in range(repeats)
            )
            rows.append({"side": side, "game": game, "games": games, "rounds": rounds,
                         "seconds": seconds, "games_per_s": games / seconds})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(api: list[dict], lm: list[dict], bots: list[dict]) -> str:
    lines = [
        "| API (faults in 1 of 3 calls) | games | finished | wall s | games/s | rounds/s "
        "| calls | transport retries | format retries |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in api:
        lines.append(
            f"| {r['side']}{' (stopped at the budget)' if r['stopped_at_budget'] else ''} "
            f"| {r['games']} | {r['games_finished']} | {r['seconds']:.1f} "
            f"| {r['games_per_s']:.3f} | {r['rounds_per_s']:.2f} | {sum(r['calls'].values())} "
            f"| {r['usage'].get('transport_retries', 0)} | {r['usage'].get('format_retries', 0)} |"
        )
    lines += [
        "",
        "| LM self-play | game | games | wall s | games/s | tok/s | attempts/decision "
        "| same records |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in lm:
        lines.append(
            f"| {r['side']} ({r['model']}) | {r['game']} ({r['rounds']} rounds) | {r['games']} "
            f"| {r['seconds']:.2f} | {r['games_per_s']:.2f} | {r['tokens_per_s']:.0f} "
            f"| {r['attempts_per_decision']:.2f} | {'yes' if r['same_records'] else 'NO'} |"
        )
    lines += ["", "| bots | game | games | wall s | games/s |", "|---|---|---:|---:|---:|"]
    for r in bots:
        lines.append(
            f"| {r['side']} | {r['game']} ({r['rounds']} rounds) | {r['games']} "
            f"| {r['seconds']:.3f} | {r['games_per_s']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=16, help="API games (16).")
    parser.add_argument("--rounds", type=int, default=10, help="Rounds per game (10).")
    parser.add_argument("--budget", type=float, default=300.0, help="Seconds per API side.")
    parser.add_argument("--slow", type=float, default=2.0, help="Seconds of a slow reply.")
    parser.add_argument("--lm-games", type=int, default=32, help="LM self-play games (32).")
    parser.add_argument("--repeats", type=int, default=2, help="LM and bot runs per side.")
    parser.add_argument("--model", default=None, help="LM (default: the small model).")
    parser.add_argument("--out", default="benchmarks/barrier-free.json", help="JSON results.")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    start = time.perf_counter()
    api = measure_api(args.games, args.rounds, args.budget, args.slow)
    lm = measure_lm(args.model or small_model(), args.lm_games, args.rounds, args.repeats)
    bots = measure_bots(64, args.rounds, args.repeats)
    table = markdown(api, lm, bots)
    print(f"\n{table}")
    seconds = time.perf_counter() - start
    machine = {"torch": torch.__version__, "threads": torch.get_num_threads(),
               "cpu_count": os.cpu_count(), "platform": platform.platform()}  # fmt: skip
    meta = {"seconds": seconds, "args": vars(args), **machine}
    Path(args.out).write_text(json.dumps(
        {"meta": meta, "api": api, "lm": lm, "bots": bots, "markdown": table}, indent=2
    ) + "\n")  # fmt: skip
    print(f"\nwrote {args.out} in {seconds:.0f}s")


if __name__ == "__main__":
    main()
