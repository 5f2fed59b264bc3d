"""Plays many games at once.

Games advance independently: a game moves to its next phase as soon as every decision of its
current one is settled, and each policy (or shared batcher, e.g. one language-model engine
serving several adapters) serves the requests pending whenever it is free (an engine, those of
the least advanced games; see :mod:`detente.rollout.scheduler`), so a slow reply or a retry
holds up only its own game. With ``lockstep`` each step instead gathers every pending decision
of every unfinished game and sends one batch per policy; the records are the same either way.

Invalid replies follow SPEC §1.5: ``free_retries`` plain re-samples, then one format-constrained
sample for a move where the policy supports it (a message has no allowed set: it gets the free
re-samples only), then the protocol's declared default, flagged ``invalid``. With
``constrain_moves`` every move is sampled constrained from the first try (messages stay free).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from detente.games.base import Game, IllegalAction, Kind
from detente.policies.base import PlayStopped, Policy, Reply, Request
from detente.protocol.base import InvalidReply, Protocol
from detente.rollout.records import GameRecord, SeatRecord, Turn
from detente.rollout.scheduler import Scheduler, dispatch


class InvalidReplyConfig(BaseModel):
    """What to do when a reply does not match the format (SPEC §1.5)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    free_retries: int = Field(2, ge=0, description="Plain re-samples before anything else.")
    constrained_retry: bool = Field(
        True,
        description="Then one format-constrained sample of a move, where the policy supports "
        "it (messages have nothing to constrain to).",
    )
    constrain_moves: bool = Field(
        False,
        description="Sample every move (not messages) format-constrained from the first try, "
        "where the policy supports it: the policy over moves is then the model's distribution "
        "restricted to the legal replies, and the trainer scores moves under the same mask.",
    )


@dataclass
class Match:
    """One game to play and the policy in each of its seats (``learners``: which seats give
    gradients; default none)."""

    game: Game
    policies: tuple[Policy, ...]
    game_id: str
    group: int = 0
    learners: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        seats = self.game.num_players
        if not self.learners:
            self.learners = (False,) * seats
        if len(self.policies) != seats or len(self.learners) != seats:
            raise ValueError(
                f"{self.game.name} has {seats} seats: got {len(self.policies)} policies and "
                f"{len(self.learners)} learner flags"
            )


@dataclass
class _Seat:
    record: SeatRecord
    messages: list[dict[str, str]]
    cursor: int = 0  # events already shown to this seat


@dataclass
class _Live:
    match: Match
    seats: tuple[_Seat, ...]
    turn_counter: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.turn_counter = [0] * len(self.seats)


@dataclass(frozen=True)
class _Asking:
    """How the decisions of a play are asked: the protocol, the invalid-reply policy and the
    play's sampling seed."""

    protocol: Protocol
    invalid: InvalidReplyConfig
    seed: int


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys (stable across runs and platforms)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0] >> 1)


def _json_action(action: Any) -> Any:
    if isinstance(action, Enum):
        return action.value
    if isinstance(action, tuple):
        return list(action)
    return action


def play(
    matches: Sequence[Match],
    protocol: Protocol,
    invalid: InvalidReplyConfig | None = None,
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
    first_index: int = 0,
    lockstep: bool = False,
) -> list[GameRecord]:
    """Play ``matches`` to the end, batched across games; return one record per game.

    Games advance independently: a game goes on to its next phase as soon as every decision of
    its current one (retries included) is settled, while others wait for theirs; each policy
    (or shared batcher) serves the requests pending when it is free (see
    :mod:`detente.rollout.scheduler`). With ``lockstep`` every step waits for every pending
    decision of every game instead (one batch per policy per step, on the caller's thread); a
    single game is always played so: it has no other game to wait for, and its policies then
    run on the caller's thread (a person at the terminal can stop it with Ctrl-C). Both give
    the same records: sampling seeds derive from ``seed`` and each game's index in the batch
    (``first_index`` for ``matches[0]``), never from the order of the calls, so a shard of a
    batch played alone also gives the records it gives in the batch.

    ``on_step(finished, total)`` is called after each step, or each batch of replies taken
    without the barrier (for progress bars). A policy's ``PlayStopped`` stops every game and
    carries the records of their complete rounds.
    """
    asking = _Asking(protocol, invalid or InvalidReplyConfig(), seed)
    live = {first_index + i: _start(match, protocol) for i, match in enumerate(matches)}
    try:
        run = _play_lockstep if lockstep or len(live) == 1 else _play_free
        run(live, asking, on_step)
    except PlayStopped as stopped:  # the games as far as they went, for the transcript
        stopped.records = [_played_so_far(_record(item)) for item in live.values()]
        raise
    return [_record(item) for item in live.values()]


def _play_lockstep(
    live: dict[int, _Live], asking: _Asking, on_step: Callable[[int, int], None] | None
) -> None:
    active = list(live)
    while active:
        decisions = [(g, p) for g in active for p in live[g].match.game.phase.players]
        actions = _decide(live, decisions, asking)
        by_game: dict[int, dict[int, Any]] = defaultdict(dict)
        for (g, p), action in zip(decisions, actions, strict=True):
            by_game[g][p] = action
        for g, acts in by_game.items():
            live[g].match.game.act(acts)
        finished = [g for g in active if live[g].match.game.done]
        _end_sessions(live, finished)
        active = [g for g in active if not live[g].match.game.done]
        if on_step is not None:
            on_step(len(live) - len(active), len(live))


def _play_free(
    live: dict[int, _Live], asking: _Asking, on_step: Callable[[int, int], None] | None
) -> None:
    """Every game on its own: a settled decision's game acts once its whole phase is settled,
    then asks its next phase; an unsettled one asks its next attempt."""
    scheduler = Scheduler()
    phases: dict[int, list[_Decision]] = {}
    played = dict.fromkeys(live, 0)  # phases each game has played
    finished = 0

    def ask(decision: _Decision, request: Request) -> None:
        g, p = decision.game, decision.player
        scheduler.ask(decision.policy, request, decision, (played[g], decision.attempts), (g, p))

    def ask_phase(g: int) -> None:
        phases[g] = [
            _Decision.prompted(live, g, p, asking) for p in live[g].match.game.phase.players
        ]
        for decision in phases[g]:
            ask(decision, decision.first_request())

    try:
        for g in live:
            ask_phase(g)
        while scheduler.busy():
            for decision, reply in scheduler.replies():
                decision.take(reply)
                request = decision.next_request()
                if request is not None:
                    ask(decision, request)
                    continue
                g = decision.game
                if any(not d.settled for d in phases[g]):
                    continue
                game = live[g].match.game
                game.act({d.player: d.record() for d in phases[g]})
                played[g] += 1
                if not game.done:
                    ask_phase(g)
                    continue
                del phases[g]
                finished += 1
                _end_sessions(live, [g], scheduler.end_sessions)
            if on_step is not None:
                on_step(finished, len(live))
        assert finished == len(live), "a game has a phase in which no seat decides"
    except BaseException:  # stop the calls in flight (Ctrl-C too: a lane's running engine
        # call is waited for, or the interpreter would exit with a thread inside torch and abort)
        scheduler.close()
        raise


def _start(match: Match, protocol: Protocol) -> _Live:
    seats = []
    for player in range(match.game.num_players):
        system = protocol.rules(match.game, player)
        record = SeatRecord(
            player, match.policies[player].name, system, learner=match.learners[player]
        )
        seats.append(_Seat(record, [{"role": "system", "content": system}]))
    return _Live(match, tuple(seats))


def _session_id(item: _Live, player: int) -> str:
    return f"{item.match.game_id}/{player}"


def _decide(live: dict[int, _Live], decisions: list[tuple[int, int]], asking: _Asking) -> list[Any]:
    """Ask every deciding seat (``_prompt``), re-asking the ones whose reply does not parse
    (``_sample_until_valid``), and record each decision (``_record_turn``)."""
    pending = [_Decision.prompted(live, g, p, asking) for g, p in decisions]
    _sample_until_valid(pending)
    return [decision.record() for decision in pending]


@dataclass
class _Outcome:
    """How one decision ended: the action applied, the reply that stands, the tries and the
    usage of all of them (tokens, an API's retries), summed."""

    action: Any
    reply: Reply
    invalid: bool
    attempts: int
    usage: dict[str, int]


def _prompt(item: _Live, player: int, protocol: Protocol) -> Request:
    """The seat's new user message (the events it has not seen yet), appended to its chat, and
    the request that carries it (its sampling seed is set per attempt)."""
    seat, game = item.seats[player], item.match.game
    events = game.events(player)
    prompt = protocol.observation(events[seat.cursor :], game.phase.kind, player, history=events)
    seat.cursor = len(events)
    seat.messages.append({"role": "user", "content": prompt})
    return Request(
        session_id=_session_id(item, player),
        game=game.name,
        player=player,
        round=game.round,
        kind=game.phase.kind,
        messages=tuple(seat.messages),
        events=tuple(events),
        protocol=protocol,
        seed=0,
    )


@dataclass
class _Decision:
    """One seat's decision under SPEC §1.5's retry policy: ``free_retries`` plain re-samples,
    then a constrained one for a move where the policy supports it (a message has no allowed
    set: it gets the free re-samples only), then the declared default, flagged invalid.
    Attempt a of decision (g, p) samples with seed ``derive_seed(seed, game seed, g, p, turn
    index, a)``, whenever and with whatever else it is sent."""

    item: _Live
    game: int  # its index in the batch (g)
    player: int
    request: Request  # as prompted; each attempt sets its seed
    asking: _Asking
    attempts: int = 0
    result: tuple[Any, Reply] | None = None  # the valid action and its reply
    last_reply: Reply | None = None
    usage: Counter[str] = field(default_factory=Counter)  # of every attempt's reply

    @classmethod
    def prompted(cls, live: dict[int, _Live], g: int, player: int, asking: _Asking) -> _Decision:
        """The seat's new prompt (``_prompt``) and the decision it asks for."""
        return cls(live[g], g, player, _prompt(live[g], player, asking.protocol), asking)

    @property
    def policy(self) -> Policy:
        return self.item.match.policies[self.player]

    @property
    def settled(self) -> bool:
        """A valid reply came, or no attempt is left (a message skips the constrained one)."""
        if self.result is not None or self.attempts == self._most_attempts():
            return True
        return self._constrained_retry() and not self._constrainable()

    def first_request(self) -> Request:
        request = self.next_request()
        assert request is not None  # the first attempt is always made
        return request

    def next_request(self) -> Request | None:
        """The next attempt's request (its seed; constrained or not); None once settled."""
        if self.settled:
            return None
        item, p = self.item, self.player
        seeded = derive_seed(
            self.asking.seed,
            item.match.game.seed,
            self.game,
            p,
            item.turn_counter[p],
            self.attempts,
        )
        constrained = self._constrained_retry() or (
            self._constrainable() and self.asking.invalid.constrain_moves
        )
        return dataclasses.replace(self.request, seed=seeded, constrained=constrained)

    def take(self, reply: Reply) -> None:
        """An attempt's reply: it settles the decision if it parses and the rules allow it."""
        self.attempts += 1
        self.last_reply = reply
        self.usage.update(reply.usage)
        protocol, game, kind = self.asking.protocol, self.item.match.game, self.request.kind
        with contextlib.suppress(InvalidReply):
            self.result = (_parse_legal(protocol, game, self.player, kind, reply.text), reply)

    def record(self) -> Any:
        """Record the settled decision in the seat's chat and record (``_record_turn``); its
        action (the declared default where no valid reply came; the last reply stands)."""
        if self.result is None:
            assert self.last_reply is not None
            default = self.asking.protocol.default(self.request.kind)
            outcome = _Outcome(default, self.last_reply, True, self.attempts, dict(self.usage))
        else:
            outcome = _Outcome(*self.result, False, self.attempts, dict(self.usage))
        _record_turn(self.item, self.player, self.request, outcome)
        return outcome.action

    def _constrained_retry(self) -> bool:
        """Whether the next attempt is the constrained one (the last, after a free one)."""
        retry = self.asking.invalid.constrained_retry
        return retry and self.attempts == self._most_attempts() - 1 and self.attempts > 0

    def _most_attempts(self) -> int:
        invalid = self.asking.invalid
        return 1 + invalid.free_retries + (1 if invalid.constrained_retry else 0)

    def _constrainable(self) -> bool:
        """Only moves have an allowed set to constrain to."""
        return self.policy.supports_constrained and self.request.kind is Kind.MOVE


def _sample_until_valid(decisions: list[_Decision]) -> None:
    """Settle ``decisions`` in lockstep: each round of attempts is one batch per policy."""
    while True:
        asking = [(d, r) for d in decisions if (r := d.next_request()) is not None]
        if not asking:
            return
        replies = dispatch([(d.policy, request) for d, request in asking])
        for (decision, _), reply in zip(asking, replies, strict=True):
            decision.take(reply)


def _record_turn(item: _Live, player: int, request: Request, outcome: _Outcome) -> None:
    """The reply joins the seat's chat and the decision its record."""
    seat, reply = item.seats[player], outcome.reply
    item.turn_counter[player] += 1
    seat.messages.append({"role": "assistant", "content": reply.text})
    seat.record.turns.append(
        Turn(
            round=request.round,
            kind=request.kind,
            prompt=seat.messages[-2]["content"],
            reply=reply.text,
            action=_json_action(outcome.action),
            invalid=outcome.invalid,
            attempts=outcome.attempts,
            invalid_attempts=outcome.attempts - (0 if outcome.invalid else 1),
            constrained=reply.constrained,
            prompt_ids=list(reply.prompt_ids),
            token_ids=list(reply.token_ids),
            logprobs=list(reply.logprobs),
            allowed=None if reply.allowed is None else [list(a) for a in reply.allowed],
            usage=outcome.usage,
            distribution=None if outcome.invalid else reply.distribution,
        )
    )


def _parse_legal(protocol: Protocol, game: Game, player: int, kind: Kind, text: str) -> Any:
    """The reply's action, if it parses and the rules allow it; else ``InvalidReply``."""
    action = protocol.parse(kind, text)
    if kind is Kind.MOVE:
        try:
            game.check_move(player, action)
        except IllegalAction as error:
            raise InvalidReply(f"illegal move: {error}") from None
    return action


def _end_sessions(
    live: dict[int, _Live],
    finished: list[int],
    end: Callable[[Policy, list[str]], None] = lambda policy, ids: policy.end_sessions(ids),
) -> None:
    """Each policy of the finished games drops their sessions (through ``end``)."""
    by_policy: dict[int, tuple[Policy, list[str]]] = {}
    for g in finished:
        for p, policy in enumerate(live[g].match.policies):
            by_policy.setdefault(id(policy), (policy, []))[1].append(_session_id(live[g], p))
    for policy, session_ids in by_policy.values():
        end(policy, session_ids)


def _played_so_far(record: GameRecord) -> GameRecord:
    """A stopped game's record: its complete rounds only (an unfinished round's turns left
    out), ``num_rounds`` the rounds played."""
    played = len(record.rewards)
    seats = tuple(
        dataclasses.replace(seat, turns=[t for t in seat.turns if t.round < played])
        for seat in record.seats
    )
    return dataclasses.replace(record, num_rounds=played, seats=seats)


def _record(item: _Live) -> GameRecord:
    game = item.match.game
    return GameRecord(
        game_id=item.match.game_id,
        game=game.name,
        seed=game.seed,
        group=item.match.group,
        num_rounds=game.num_rounds,
        rewards=list(game.rewards),
        infos=list(game.infos),
        seats=tuple(seat.record for seat in item.seats),
    )


class SteppedGame:
    """One game driven from outside, a phase at a time (e.g. inside an Axelrod match, whose
    library chooses when each move happens): ``decide`` asks some seats' policies through
    :func:`play`'s own decision path (prompts, seeds, retries, records), ``act`` applies the
    phase's actions, those decided here and those given from outside."""

    def __init__(
        self,
        match: Match,
        protocol: Protocol,
        invalid: InvalidReplyConfig | None = None,
        seed: int = 0,
        index: int = 0,
    ) -> None:
        self.protocol, self.invalid, self.seed, self.index = (
            protocol, invalid or InvalidReplyConfig(), seed, index
        )  # fmt: skip
        self._asking = _Asking(self.protocol, self.invalid, seed)
        self._live = {index: _start(match, protocol)}

    @property
    def game(self) -> Game:
        return self._live[self.index].match.game

    def decide(self, players: Sequence[int]) -> dict[int, Any]:
        """The actions of ``players`` (seats of the current phase), from their policies."""
        decisions = [(self.index, p) for p in players]
        actions = _decide(self._live, decisions, self._asking)
        return dict(zip(players, actions, strict=True))

    def act(self, actions: dict[int, Any]) -> None:
        self.game.act(actions)
        if self.game.done:
            _end_sessions(self._live, [self.index])

    def record(self) -> GameRecord:
        return _record(self._live[self.index])


def invalid_rate(records: Sequence[GameRecord]) -> float:
    """Fraction of decisions that ended on the default move (no valid reply)."""
    return reply_stats(records)["invalid_rate"]


def reply_stats(records: Sequence[GameRecord]) -> dict[str, float]:
    """Per decision: share ending on the default move (``invalid_rate``), share settled by a
    format-constrained sample (``constrained_rate``), and invalid replies sampled on the way
    per decision (``invalid_attempts``)."""
    turns = [t for r in records for s in r.seats for t in s.turns]
    n = len(turns) or 1
    return {
        "invalid_rate": sum(t.invalid for t in turns) / n,
        "constrained_rate": sum(t.constrained and not t.invalid for t in turns) / n,
        "invalid_attempts": sum(t.invalid_attempts for t in turns) / n,
    }


def games_progress(description: str) -> tuple[tqdm, Callable[[int, int], None]]:
    """A progress bar over finished games and the ``on_step`` callback of :func:`play` that
    drives it. Games of one length finish at about the same time, so the bar also shows the
    steps played so far (batches of replies taken) and redraws at each one."""
    bar = tqdm(desc=description, unit="game", leave=False)
    steps = 0

    def update(finished: int, total: int) -> None:
        nonlocal steps
        steps += 1
        bar.total = total
        bar.n = finished
        bar.set_postfix_str(f"step {steps}")  # redraws the bar

    return bar, update
