"""Rollouts without the lockstep barrier: the same records as lockstep, slow games hold up no
fast one, a stop still gives the games so far, API usage summed per agent in the face-off."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
import torch

from detente.evaluate.faceoff import faceoff, population_faceoff
from detente.games import make_config, make_game
from detente.games.base import Kind
from detente.lm.models import load_engine
from detente.policies.base import PlayStopped, Policy, Reply, Request
from detente.policies.bots import make_bot
from detente.policies.lm import LMBatcher, LMPolicy
from detente.protocol import make_protocol
from detente.rollout.records import GameRecord
from detente.rollout.runner import InvalidReplyConfig, Match, play
from detente.rollout.scheduler import Scheduler

torch.set_num_threads(1)

BOTS = {"ipd": ("tit-for-tat", "random"), "trust-split": ("honest", "liar")}


class Slow(Policy):
    """Another policy's replies, each call after a pause."""

    def __init__(self, inner: Policy, pause: float = 0.002) -> None:
        self.inner, self.pause = inner, pause
        self.name = f"slow-{inner.name}"

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        time.sleep(self.pause)
        return self.inner.act(requests)


@pytest.fixture(scope="module")
def lm() -> LMPolicy:
    """The untrained test model, base weights, short replies."""
    batcher = LMBatcher(load_engine("tiny-test"), max_message_tokens=12, max_move_tokens=6)
    return LMPolicy(batcher, None, "lm:tiny-test")


def lineups(game: str, lm: Policy, slow: bool) -> list[tuple[Policy, Policy]]:
    a, b = (make_bot(game, name) for name in BOTS[game])
    pairs = [(lm, a), (b, lm), (lm, lm), (a, b)]
    return pairs + [(Slow(a), lm), (b, Slow(a, 0.01))] if slow else pairs


def matches_of(game: str, pairs: Sequence[tuple[Policy, Policy]], rounds: int = 3) -> list[Match]:
    config = make_config(game, {"rounds": rounds})
    return [
        Match(make_game(game, config, 10 + k), pair, f"{game}-{k}") for k, pair in enumerate(pairs)
    ]


@pytest.mark.parametrize("game", ["ipd", "trust-split"])
def test_the_same_records_as_lockstep_with_and_without_a_slow_policy(game, lm, assert_same_records):
    protocol = make_protocol(game)
    fast = lineups(game, lm, slow=False)
    with_slow = lineups(game, lm, slow=True)
    lockstep = play(matches_of(game, with_slow), protocol, seed=3, lockstep=True)
    free = play(matches_of(game, with_slow), protocol, seed=3)
    assert_same_records(free, lockstep)
    # The slow games come last (same indices, so same seeds): the others' records do not move.
    alone = play(matches_of(game, fast), protocol, seed=3)
    assert_same_records(free[: len(fast)], alone)
    turns = [t for r in free for s in r.seats for t in s.turns]
    assert any(t.attempts > 1 for t in turns)  # the untrained model's re-asks are exercised
    assert any(t.constrained for t in turns)


def test_retries_and_constrained_samples_follow_the_same_seeds(lm, assert_same_records):
    """Every move constrained from the first try, and no retries at all: both paths agree."""
    protocol = make_protocol("trust-split")
    pairs = lineups("trust-split", lm, slow=True)
    for invalid in (
        InvalidReplyConfig(constrain_moves=True),
        InvalidReplyConfig(free_retries=0, constrained_retry=False),
        InvalidReplyConfig(free_retries=1, constrained_retry=True),
    ):
        free = play(matches_of("trust-split", pairs), protocol, invalid, seed=5)
        lockstep = play(matches_of("trust-split", pairs), protocol, invalid, 5, lockstep=True)
        assert_same_records(free, lockstep)


class Gate(Policy):
    """Waits at one call until ``opened`` is set (or a long safety timeout): at its first call,
    or (``at_retry``) at the re-ask of a first reply that does not parse."""

    name = "gate"

    def __init__(self, inner: Policy, at_retry: bool) -> None:
        self.inner, self.at_retry = inner, at_retry
        self.opened = threading.Event()
        self.released_by_event: bool | None = None
        self.calls = 0

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        self.calls += 1
        if self.at_retry and self.calls == 1:
            return [Reply("not a move") for _ in requests]
        if self.released_by_event is None:
            self.released_by_event = self.opened.wait(timeout=120)
        return self.inner.act(requests)


@pytest.mark.parametrize("at_retry", [False, True], ids=["first-try", "retry"])
def test_a_slow_game_does_not_hold_up_the_fast_ones(at_retry):
    """The gated game waits (at its first decision, or at a re-ask) until every other game has
    finished: without a barrier they do; with one, only the gate's safety timeout would open
    it."""
    bot = make_bot("ipd", "tit-for-tat")
    gate = Gate(bot, at_retry)
    pairs = [(gate, bot)] + [(bot, make_bot("ipd", "grim")) for _ in range(5)]
    progress: list[int] = []

    def on_step(finished: int, total: int) -> None:
        progress.append(finished)
        if finished == total - 1:
            gate.opened.set()

    records = play(matches_of("ipd", pairs, rounds=10), make_protocol("ipd"), on_step=on_step)
    assert gate.released_by_event is True
    assert progress[-1] == 6 and 5 in progress  # every fast game, then the gated one
    assert all(len(r.rewards) == 10 for r in records)
    first = records[0].seats[0].turns[0]
    assert (first.attempts, first.invalid) == ((2, False) if at_retry else (1, False))


class Quitter(Policy):
    """Plays like ``inner`` for ``calls`` calls, then stops the games (as a person's /quit)."""

    name = "quitter"

    def __init__(self, inner: Policy, calls: int) -> None:
        self.inner, self.calls = inner, calls

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        self.calls -= 1
        if self.calls < 0:
            raise PlayStopped("stopped")
        return self.inner.act(requests)


@pytest.mark.parametrize("lockstep", [False, True])
def test_play_stopped_stops_every_game_and_gives_their_complete_rounds(lockstep):
    game = "trust-split"
    honest, liar = make_bot(game, "honest"), make_bot(game, "liar")
    pairs: list[tuple[Policy, Policy]] = [(honest, liar), (liar, Slow(honest)), (honest, honest)]
    protocol = make_protocol(game)
    full = play(matches_of(game, [(Quitter(honest, 99), liar), *pairs], rounds=4), protocol)
    with pytest.raises(PlayStopped) as stopped:
        play(matches_of(game, [(Quitter(honest, 5), liar), *pairs], rounds=4), protocol,
             lockstep=lockstep)  # fmt: skip
    records: list[GameRecord] = stopped.value.records
    assert len(records) == 4 and 0 < records[0].num_rounds < 4
    for record, whole in zip(records, full, strict=True):
        played = record.num_rounds
        assert len(record.rewards) == played
        assert record.rewards == whole.rewards[:played]
        for seat, seat_whole in zip(record.seats, whole.seats, strict=True):
            assert all(t.round < played for t in seat.turns)
            kept = [t for t in seat_whole.turns if t.round < played]
            assert [t.reply for t in seat.turns] == [t.reply for t in kept]


def test_an_error_stops_the_play_after_the_calls_in_flight():
    class Broken(Policy):
        name = "broken"

        def act(self, requests: Sequence[Request]) -> list[Reply]:
            raise ValueError("broken policy")

    slow = Slow(make_bot("ipd", "grim"), 0.05)
    bot = make_bot("ipd", "tit-for-tat")
    with pytest.raises(ValueError, match="broken policy"):
        play(matches_of("ipd", [(slow, bot), (Broken(), bot)]), make_protocol("ipd"))


class Usage(Policy):
    """A bot's replies with API-like usage counts."""

    def __init__(self, inner: Policy, usage: dict[str, int]) -> None:
        self.inner, self.usage = inner, usage
        self.name = f"metered-{inner.name}"

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        return [Reply(r.text, usage=self.usage) for r in self.inner.act(requests)]


def test_api_usage_is_summed_per_agent_in_the_faceoff_json_and_report():
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "transport_retries": 1,
             "format_retries": 0, "gave_up": 0}  # fmt: skip
    metered = Usage(make_bot("ipd", "tit-for-tat"), usage)
    bot = make_bot("ipd", "always-defect")
    config = make_config("ipd", {"rounds": 3})
    result, records = faceoff("ipd", [metered, bot], make_protocol("ipd"), 2, config=config)
    decisions = result.decisions[metered.name]
    assert decisions == (2 + 2) * 2 * 3  # both seats against the bot, both of self-play
    expected = {k: v * decisions for k, v in usage.items()}
    assert result.to_json()["usage"] == {metered.name: expected, bot.name: {}}
    (line,) = result.reply_problems()
    assert line.startswith(metered.name) and f"{5 * decisions} prompt" in line
    assert f"{decisions} transport retries" in line
    population, _ = population_faceoff("ipd", [metered, bot], make_protocol("ipd"), 2,
                                       config=config)  # fmt: skip
    assert population.to_json()["usage"][metered.name]["prompt_tokens"] == 5 * 2 * 2 * 3


def test_usage_sums_every_attempt_of_a_decision():
    class Metered(Policy):
        name = "metered"

        def __init__(self) -> None:
            self.calls = 0

        def act(self, requests: Sequence[Request]) -> list[Reply]:
            self.calls += 1
            text = "<A>" if self.calls % 3 == 0 else "nope"
            return [Reply(text, usage={"completion_tokens": 1}) for _ in requests]

    game = make_game("ipd", make_config("ipd", {"rounds": 1}), 0)
    (record,) = play([Match(game, (Metered(), make_bot("ipd", "grim")), "g")],
                     make_protocol("ipd"), InvalidReplyConfig(free_retries=2))  # fmt: skip
    (turn,) = record.seats[0].turns
    assert turn.attempts == 3 and not turn.invalid and turn.usage == {"completion_tokens": 3}


def test_the_scheduler_batches_what_is_pending_and_ends_sessions_between_calls():
    """A lane's call takes every request of its group waiting when it starts; sessions that end
    while its call runs are dropped after the call, never during it."""
    entered, release = threading.Event(), threading.Event()
    log: list[str] = []

    class Held(Policy):
        name = "held"

        def act(self, requests: Sequence[Request]) -> list[Reply]:
            log.append(f"act {len(requests)}")
            if len(log) == 1:
                entered.set()
                release.wait(timeout=60)
            return [Reply("<A>") for _ in requests]

        def end_sessions(self, session_ids: Sequence[str]) -> None:
            log.append(f"end {len(session_ids)}")

    policy, scheduler = Held(), Scheduler()
    request = Request("s", "ipd", 0, 0, Kind.MOVE, (), (), make_protocol("ipd"), 0)
    scheduler.ask(policy, request, "first")
    done: list[tuple[str, Reply]] = []
    waiter = threading.Thread(target=lambda: done.extend(scheduler.replies()))
    waiter.start()
    assert entered.wait(timeout=60)
    scheduler.end_sessions(policy, ["x"])  # its call runs: after it
    assert log == ["act 1"]
    release.set()
    waiter.join(timeout=60)
    assert [tag for tag, _ in done] == ["first"] and log == ["act 1", "end 1"]
    for tag in ("a", "b", "c"):
        scheduler.ask(policy, request, tag)
    scheduler.end_sessions(policy, ["y", "z"])  # the lane is idle: now
    assert [tag for tag, _ in scheduler.replies()] == ["a", "b", "c"]
    assert log == ["act 1", "end 1", "end 2", "act 3"] and not scheduler.busy()


def test_the_benchmark_plays_both_sides_at_toy_size():
    """benchmarks/barrier_free.py against its faulty server (short faults) and the test model:
    no timings asserted."""
    from benchmarks import barrier_free

    api = barrier_free.measure_api(games=4, rounds=2, budget=60, slow=0.05, backoff=0.01)
    assert [r["side"] for r in api] == ["lockstep", "barrier-free"]
    assert all(r["games_finished"] == 4 and not r["stopped_at_budget"] for r in api)
    assert all(sum(r["calls"].values()) > 0 and "transport_retries" in r["usage"] for r in api)
    assert api[0]["same_moves_in_games_both_finished"] and api[0]["games_both_finished"] == 4
    lm = barrier_free.measure_lm("tiny-test", games=2, rounds=1, repeats=1)
    assert len(lm) == 4 and all(r["same_records"] and r["tokens_per_s"] > 0 for r in lm)
    assert len(barrier_free.measure_bots(games=2, rounds=1, repeats=1)) == 4
