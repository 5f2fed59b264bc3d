"""Trajectory records: what a played game leaves behind, JSON-serialisable.

One ``GameRecord`` per game with one ``SeatRecord`` per player (N seats, in seat order); each
decision is a ``Turn``.
The learner reads token ids, log-probs and round indices from turns; metrics read the game's
per-round ``infos``; reports read the text.

Records read back from a file are validated (:meth:`GameRecord.from_json`): every field has its
declared type (a ``seed`` holding markup is an error, not a string shown in a report) and the
shape is consistent (one info and one reward per seat per round, turns within the rounds, seats
in player order); a damaged file is an error naming the file and the line.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from detente.games.base import Kind


class RecordError(ValueError):
    """A game record that does not have the declared types or shape."""


@dataclass
class Turn:
    """One decision of one seat. ``invalid``: no valid reply was had, the default was used."""

    round: int
    kind: Kind
    prompt: str  # the user message of this decision
    reply: str  # the reply text that stands in the chat (the last one sampled)
    action: Any  # the action applied to the game (JSON form)
    invalid: bool = False
    attempts: int = 1  # replies sampled for this decision
    invalid_attempts: int = 0  # of which did not parse
    constrained: bool = False
    prompt_ids: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    allowed: list[list[int]] | None = None  # constrained reply: token ids allowed at each step
    usage: dict[str, int] = field(default_factory=dict)  # e.g. API token counts and retries
    distribution: dict[str, float] | None = None  # a stochastic bot's reply probabilities


@dataclass
class SeatRecord:
    player: int
    agent: str  # the policy's name
    system: str  # the rules prompt
    learner: bool = False  # this seat's tokens give gradients
    turns: list[Turn] = field(default_factory=list)


@dataclass
class GameRecord:
    game_id: str
    game: str
    seed: int
    group: int  # seed group: games with the same group share the environment seed
    num_rounds: int
    rewards: list[tuple[float, ...]]  # per round, one reward per seat
    infos: list[dict[str, Any]]
    seats: tuple[SeatRecord, ...]

    @property
    def num_players(self) -> int:
        return len(self.seats)

    def co_players(self, player: int) -> tuple[int, ...]:
        """The seats other than ``player``, in seat order."""
        return tuple(p for p in range(self.num_players) if p != player)

    def seat_rewards(self, player: int) -> list[float]:
        return [r[player] for r in self.rewards]

    def mean_reward(self, player: int) -> float:
        """Mean reward per round of ``player``."""
        return sum(self.seat_rewards(player)) / self.num_rounds

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: Any) -> GameRecord:
        """The record of ``to_json``'s output, validated; ``RecordError`` names the first
        field that is wrong (never its value)."""
        try:
            record = _record_adapter().validate_python(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            raise RecordError(f"{where}: {first['msg']}") from None
        record._check_shape()
        return record

    def _check_shape(self) -> None:
        rounds = self.num_rounds
        if rounds < 0 or len(self.rewards) != rounds or len(self.infos) != rounds:
            raise RecordError(
                f"num_rounds {rounds} with {len(self.rewards)} rewards and {len(self.infos)} infos"
            )
        if len(self.seats) < 2:
            raise RecordError(f"seats: {len(self.seats)} seat(s), a game has at least 2")
        for t, reward in enumerate(self.rewards):
            if len(reward) != len(self.seats):
                raise RecordError(
                    f"rewards.{t}: {len(reward)} rewards for {len(self.seats)} seats"
                )
        for index, seat in enumerate(self.seats):
            if seat.player != index:
                raise RecordError(f"seats.{index}.player: {seat.player}, expected {index}")
            for k, turn in enumerate(seat.turns):
                if not 0 <= turn.round < rounds:
                    raise RecordError(f"seats.{index}.turns.{k}.round: outside 0..{rounds - 1}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_records(path: Path, records: Iterable[GameRecord]) -> None:
    """Gzip-compressed JSON lines, written to a temporary file then renamed (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record.to_json()) + "\n")
    tmp.replace(path)


@cache
def _record_adapter() -> TypeAdapter[GameRecord]:
    return TypeAdapter(GameRecord)


def read_records(path: Path) -> Iterator[GameRecord]:
    """The records of a file written by :func:`write_records`; a truncated or damaged file, or
    a record of the wrong types, is a ``RecordError`` naming the file (and line)."""
    number = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):  # noqa: B007 - used after the loop
                yield GameRecord.from_json(json.loads(line))
    except RecordError as error:
        raise RecordError(f"{path}, line {number}: {error}") from None
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}, line {number + 1}: not JSON ({error.msg})") from None
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
        reason = "truncated" if isinstance(error, EOFError) else str(error) or type(error).__name__
        raise RecordError(f"{path}: cannot read the transcript ({reason})") from None
