"""The batched runner: one call per policy per step, and the invalid-reply policy (SPEC §1.5)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from detente.games import make_config, make_game
from detente.games.base import Kind
from detente.games.ipd import Move
from detente.policies.base import Policy, Reply, Request
from detente.policies.bots import make_bot
from detente.protocol import make_protocol
from detente.rollout.records import GameRecord, read_records, write_records
from detente.rollout.runner import (
    InvalidReplyConfig,
    Match,
    games_progress,
    invalid_rate,
    play,
)


class Scripted(Policy):
    """Replies from a fixed list per decision (cycling), records every batch it receives."""

    def __init__(self, replies: Sequence[str], constrained_reply: str | None = None) -> None:
        self.name = "scripted"
        self.replies = list(replies)
        self.constrained_reply = constrained_reply
        self.supports_constrained = constrained_reply is not None
        self.batches: list[list[Request]] = []
        self.calls = 0

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        self.batches.append(list(requests))
        out = []
        for request in requests:
            if request.constrained:
                out.append(Reply(self.constrained_reply or "", constrained=True))
            else:
                out.append(Reply(self.replies[self.calls % len(self.replies)]))
                self.calls += 1
        return out


def play_one(policy: Policy, invalid: InvalidReplyConfig, rounds: int = 1) -> GameRecord:
    game = make_game("ipd", make_game("ipd", None, 0).config_type(rounds=rounds), 0)
    (record,) = play(
        [Match(game, (policy, make_bot("ipd", "always-cooperate")), "g")],
        make_protocol("ipd"),
        invalid,
    )
    return record


def test_one_batch_per_policy_per_step():
    policy = Scripted(["<A>"])
    games = [make_game("ipd", None, s) for s in range(16)]
    matches = [Match(g, (policy, policy), f"g{i}") for i, g in enumerate(games)]
    play(matches, make_protocol("ipd"))
    assert len(policy.batches) == 10  # one per round, both seats of all 16 games together
    assert all(len(b) == 32 for b in policy.batches)
    assert len({r.session_id for b in policy.batches for r in b}) == 32


def test_free_retries_recover_and_are_counted():
    record = play_one(Scripted(["nope", "still no", "<A>"]), InvalidReplyConfig(free_retries=2))
    turn = record.seats[0].turns[0]
    assert (turn.action, turn.invalid, turn.attempts, turn.invalid_attempts) == ("C", False, 3, 2)


def test_constrained_sample_after_free_retries():
    policy = Scripted(["bad"], constrained_reply="<B>")
    record = play_one(policy, InvalidReplyConfig(free_retries=1, constrained_retry=True))
    turn = record.seats[0].turns[0]
    assert (turn.action, turn.invalid, turn.constrained, turn.attempts) == ("D", False, True, 3)


def test_a_message_gets_only_its_free_retries_no_constrained_attempt():
    """Messages have no allowed set, so there is nothing to constrain: 1 + free_retries
    attempts; a move's last attempt is the constrained one."""
    policy = Scripted(["not a message"], constrained_reply="<<proposal_start>> 5 <<proposal_end>>")
    game = make_game("trust-split", make_config("trust-split", {"rounds": 1}), 0)
    (record,) = play([Match(game, (policy, make_bot("trust-split", "honest")), "g")],
                     make_protocol("trust-split"),
                     InvalidReplyConfig(free_retries=1, constrained_retry=True))
    turns = record.seats[0].turns
    messages = [t for t in turns if t.kind is Kind.MESSAGE]
    (move,) = [t for t in turns if t.kind is Kind.MOVE]
    assert messages and all((t.attempts, t.invalid, t.constrained) == (2, True, False)
                            for t in messages)
    assert not any(r.constrained for b in policy.batches for r in b if r.kind is Kind.MESSAGE)
    assert (move.attempts, move.invalid, move.constrained) == (3, False, True)


def test_constrain_moves_asks_moves_constrained_from_the_first_try_messages_free():
    policy = Scripted(["free text"], constrained_reply="<B>")
    game = make_game("trust-split", None, 0)
    play([Match(game, (policy, make_bot("trust-split", "honest")), "g")],
         make_protocol("trust-split"), InvalidReplyConfig(free_retries=0, constrained_retry=False,
                                                          constrain_moves=True))
    first_tries = [r for batch in policy.batches for r in batch]
    assert {r.kind for r in first_tries} == {Kind.MESSAGE, Kind.MOVE}
    assert all(r.constrained == (r.kind is Kind.MOVE) for r in first_tries)
    bot = make_bot("ipd", "tit-for-tat")  # no constrained sampling: asked plainly, not skipped
    (record,) = play([Match(make_game("ipd", None, 0), (bot, bot), "b")], make_protocol("ipd"),
                     InvalidReplyConfig(constrain_moves=True))
    assert not any(t.constrained or t.invalid for s in record.seats for t in s.turns)


def test_default_move_is_flagged_never_silent():
    record = play_one(Scripted(["<A> please"]), InvalidReplyConfig(free_retries=1), rounds=2)
    turns = record.seats[0].turns
    assert all(t.invalid and t.action == Move.DEFECT.value for t in turns)
    assert all(t.reply == "<A> please" for t in turns)  # the text said stays in the chat
    assert invalid_rate([record]) == pytest.approx(0.5)  # Alice's 2 of 4 decisions


def test_retry_seeds_differ_and_are_reproducible():
    policy = Scripted(["x", "y", "<A>"])
    play_one(policy, InvalidReplyConfig(free_retries=2))
    seeds = [b[0].seed for b in policy.batches]
    assert len(set(seeds)) == 3
    again = Scripted(["x", "y", "<A>"])
    play_one(again, InvalidReplyConfig(free_retries=2))
    assert [b[0].seed for b in again.batches] == seeds


def test_conversation_grows_and_records_round_trip(tmp_path):
    policy = Scripted(["<A>"])
    (record,) = play(
        [Match(make_game("ipd", None, 3), (policy, make_bot("ipd", "always-defect")), "g")],
        make_protocol("ipd"),
    )
    last = policy.batches[-1][0].messages
    assert [m["role"] for m in last] == ["system"] + ["user", "assistant"] * 9 + ["user"]
    path = tmp_path / "records.jsonl.gz"
    write_records(path, [record])
    assert [r.to_json() for r in read_records(path)] == [record.to_json()]


def test_illegal_move_is_an_invalid_reply_not_a_crash():
    config = make_config("split", {"quantity": 5, "rounds": 1})
    policy = Scripted(["Proposal: 10 hats, 0 books, 0 balls"])
    (record,) = play(
        [Match(make_game("split", config, 0), (policy, make_bot("split", "half")), "g")],
        make_protocol("split"),
        InvalidReplyConfig(free_retries=1, constrained_retry=False),
    )
    turn = record.seats[0].turns[0]
    assert turn.invalid and turn.invalid_attempts == 2 and turn.action == [0, 0, 0]


class SeedMoves(Policy):
    """Moves decided by the request's sampling seed (like a seeded sampler)."""

    name = "seed-moves"

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        return [Reply("<A>" if r.seed % 3 else "<B>") for r in requests]


def test_a_shard_played_alone_gives_the_records_it_gives_in_the_batch():
    def matches() -> list[Match]:
        policy = SeedMoves()
        return [Match(make_game("ipd", None, s), (policy, policy), f"g{s}") for s in range(6)]

    protocol = make_protocol("ipd")
    whole = play(matches(), protocol, seed=5)
    shards = [
        play(matches()[lo:hi], protocol, seed=5, first_index=lo) for lo, hi in ((0, 2), (2, 6))
    ]
    as_json = [r.to_json() for r in whole]
    assert as_json == [r.to_json() for shard in shards for r in shard]
    moves = {t.action for r in whole for s in r.seats for t in s.turns}
    assert len(moves) == 2  # the seeds decide, so the test would see a wrong index
    assert as_json != [r.to_json() for r in play(matches()[2:6], protocol, seed=5)]


def test_games_progress_shows_each_step_of_games_played_in_lockstep():
    """Games of one length finish together at the last step; the bar must move before that."""
    bar, update = games_progress("games")
    shown: list[str] = []
    with bar:
        bar.display = lambda msg=None, pos=None: shown.append(str(bar))  # what is drawn
        bot = make_bot("ipd", "tit-for-tat")
        config = make_game("ipd", None, 0).config_type(rounds=3)
        matches = [Match(make_game("ipd", config, k), (bot, bot), f"g{k}") for k in range(4)]
        play(matches, make_protocol("ipd"), on_step=update)
    assert [("step 1" in s, "step 2" in s, "step 3" in s) for s in shown][:3] == [
        (True, False, False), (False, True, False), (False, False, True)
    ]
    assert "0/4" in shown[0] and "4/4" in shown[2]
