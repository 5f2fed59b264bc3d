"""Plays many games at once.

Each step gathers every pending decision of every unfinished game and sends one batch per
policy (or per shared batcher, e.g. one language-model engine serving several adapters). Invalid
replies follow SPEC §1.5: ``free_retries`` plain re-samples, then one format-constrained sample
for a move where the policy supports it (a message has no allowed set: it gets the free
re-samples only), then the protocol's declared default, flagged ``invalid``. With
``constrain_moves`` every move is sampled constrained from the first try (messages stay free).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
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


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys (stable across runs and platforms)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0] >> 1)


def batch_key(policy: Policy) -> Hashable:
    """Policies that share a batcher (e.g. adapters on one engine) are served in one call."""
    return id(policy.batcher) if policy.batcher is not None else id(policy)


def dispatch(pairs: Sequence[tuple[Policy, Request]]) -> list[Reply]:
    """One call per policy (or shared batcher) for all of its requests; replies in order."""
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for index, (policy, _) in enumerate(pairs):
        groups[batch_key(policy)].append(index)
    replies: list[Reply | None] = [None] * len(pairs)
    for indices in groups.values():
        first_policy = pairs[indices[0]][0]
        if first_policy.batcher is not None:
            answers = first_policy.batcher.act([pairs[i] for i in indices])
        else:
            answers = first_policy.act([pairs[i][1] for i in indices])
        if len(answers) != len(indices):
            raise RuntimeError(
                f"{first_policy.name} returned {len(answers)} replies for {len(indices)}"
            )
        for i, answer in zip(indices, answers, strict=True):
            replies[i] = answer
    return replies  # type: ignore[return-value]


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
) -> list[GameRecord]:
    """Play ``matches`` to the end, batched across games; return one record per game.

    ``on_step(finished, total)`` is called after each step (for progress bars). Sampling seeds
    derive from ``seed`` and each game's index in the batch, ``first_index`` for
    ``matches[0]``: a shard of a batch played alone gives the records it gives in the batch.
    """
    invalid = invalid or InvalidReplyConfig()
    live = {first_index + i: _start(match, protocol) for i, match in enumerate(matches)}
    active = list(live)
    while active:
        decisions = [(g, p) for g in active for p in live[g].match.game.phase.players]
        try:
            actions = _decide(live, decisions, protocol, invalid, seed)
        except PlayStopped as stopped:  # the games as far as they went, for the transcript
            stopped.records = [_played_so_far(_record(item)) for item in live.values()]
            raise
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
    return [_record(item) for item in live.values()]


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


def _decide(
    live: dict[int, _Live],
    decisions: list[tuple[int, int]],
    protocol: Protocol,
    invalid: InvalidReplyConfig,
    seed: int,
) -> list[Any]:
    """Ask every deciding seat (``_prompt``), re-asking the ones whose reply does not parse
    (``_sample_until_valid``), and record each decision (``_record_turn``)."""
    requests = [_prompt(live[g], p, protocol) for g, p in decisions]
    outcomes = _sample_until_valid(live, decisions, requests, protocol, invalid, seed)
    actions = []
    for (g, p), request, outcome in zip(decisions, requests, outcomes, strict=True):
        _record_turn(live[g], p, request, outcome)
        actions.append(outcome.action)
    return actions


@dataclass
class _Outcome:
    """How one decision ended: the action applied, the reply that stands, the tries."""

    action: Any
    reply: Reply
    invalid: bool
    attempts: int


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


def _sample_until_valid(
    live: dict[int, _Live],
    decisions: list[tuple[int, int]],
    requests: list[Request],
    protocol: Protocol,
    invalid: InvalidReplyConfig,
    seed: int,
) -> list[_Outcome]:
    """SPEC §1.5's retry policy, batched over decisions: ``free_retries`` plain re-samples,
    then a constrained one for moves where the policy supports it, then the declared default
    (flagged invalid). Attempt a of decision (g, p) samples with seed
    ``derive_seed(seed, game seed, g, p, turn index, a)``."""
    n = len(decisions)
    results: list[tuple[Any, Reply] | None] = [None] * n
    attempts = [0] * n
    last_reply: list[Reply | None] = [None] * n
    pending = list(range(n))
    max_attempts = 1 + invalid.free_retries + (1 if invalid.constrained_retry else 0)
    # Only moves have an allowed set to constrain to; a message's last try would be free again.
    constrainable = [
        live[g].match.policies[p].supports_constrained and requests[i].kind is Kind.MOVE
        for i, (g, p) in enumerate(decisions)
    ]
    for attempt in range(max_attempts):
        retry = invalid.constrained_retry and attempt == max_attempts - 1 and attempt > 0
        asking = [i for i in pending if not retry or constrainable[i]]
        if not asking:
            break
        pairs = []
        for i in asking:
            g, p = decisions[i]
            item = live[g]
            seeded = derive_seed(seed, item.match.game.seed, g, p, item.turn_counter[p], attempt)
            constrained = retry or (constrainable[i] and invalid.constrain_moves)
            request = dataclasses.replace(requests[i], seed=seeded, constrained=constrained)
            pairs.append((item.match.policies[p], request))
        still = []
        for i, reply in zip(asking, dispatch(pairs), strict=True):
            attempts[i] += 1
            last_reply[i] = reply
            g, p = decisions[i]
            try:
                action = _parse_legal(protocol, live[g].match.game, p, requests[i].kind, reply.text)
                results[i] = (action, reply)
            except InvalidReply:
                still.append(i)
        asked = set(asking)
        pending = sorted([i for i in pending if i not in asked] + still)
    outcomes = []
    for i in range(n):
        result = results[i]
        if result is None:  # no valid reply: the declared default, the last reply stands
            reply = last_reply[i]
            assert reply is not None
            outcomes.append(_Outcome(protocol.default(requests[i].kind), reply, True, attempts[i]))
        else:
            outcomes.append(_Outcome(result[0], result[1], False, attempts[i]))
    return outcomes


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
            usage=dict(reply.usage),
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


def _end_sessions(live: dict[int, _Live], finished: list[int]) -> None:
    by_policy: dict[int, tuple[Policy, list[str]]] = {}
    for g in finished:
        for p, policy in enumerate(live[g].match.policies):
            by_policy.setdefault(id(policy), (policy, []))[1].append(_session_id(live[g], p))
    for policy, session_ids in by_policy.values():
        policy.end_sessions(session_ids)


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
        self._live = {index: _start(match, protocol)}

    @property
    def game(self) -> Game:
        return self._live[self.index].match.game

    def decide(self, players: Sequence[int]) -> dict[int, Any]:
        """The actions of ``players`` (seats of the current phase), from their policies."""
        decisions = [(self.index, p) for p in players]
        actions = _decide(self._live, decisions, self.protocol, self.invalid, self.seed)
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
    drives it. Games played in lockstep all finish at the last step, so the bar also shows the
    steps played so far and redraws at each one."""
    bar = tqdm(desc=description, unit="game", leave=False)
    steps = 0

    def update(finished: int, total: int) -> None:
        nonlocal steps
        steps += 1
        bar.total = total
        bar.n = finished
        bar.set_postfix_str(f"step {steps}")  # redraws the bar

    return bar, update
