"""Trajectory records: what a played game leaves behind, JSON-serialisable.

One ``GameRecord`` per game with one ``SeatRecord`` per player; each decision is a ``Turn``.
The learner reads token ids, log-probs and round indices from turns; metrics read the game's
per-round ``infos``; reports read the text.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from detente.games.base import Kind


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
    rewards: list[tuple[float, float]]
    infos: list[dict[str, Any]]
    seats: tuple[SeatRecord, SeatRecord]

    def seat_rewards(self, player: int) -> list[float]:
        return [r[player] for r in self.rewards]

    def mean_reward(self, player: int) -> float:
        """Mean reward per round of ``player``."""
        return sum(self.seat_rewards(player)) / self.num_rounds

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GameRecord:
        seats = tuple(
            SeatRecord(
                **{k: v for k, v in s.items() if k != "turns"},
                turns=[Turn(**{**t, "kind": Kind(t["kind"])}) for t in s["turns"]],
            )
            for s in data["seats"]
        )
        rewards = [tuple(r) for r in data["rewards"]]
        return cls(**{**data, "seats": seats, "rewards": rewards})  # type: ignore[arg-type]


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


def read_records(path: Path) -> Iterator[GameRecord]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield GameRecord.from_json(json.loads(line))
