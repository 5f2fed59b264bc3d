"""Adding a game is one module plus one registration: a three-player volunteer's dilemma,
defined in this file alone, trains, faces off and is reported like the shipped games."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from pydantic import Field

from detente.agents import make_agent
from detente.config import load_config
from detente.evaluate.faceoff import faceoff
from detente.evaluate.report import write_report
from detente.games import Event, Game, GameConfig, GameEntry, GameInfo, Kind, Phase, register_game
from detente.games.base import IllegalAction, RoundOutcome
from detente.games.registry import unregister_game
from detente.policies.bots import Bot
from detente.protocol import InvalidReply, Protocol, Style, make_protocol
from detente.rollout.records import GameRecord
from detente.train.trainer import Trainer

# ---- the game: rules, protocol, bots, measures ------------------------------------------------


class VolunteerConfig(GameConfig):
    players: int = Field(3, ge=2, le=8)
    cost: float = Field(0.5, gt=0, lt=1, description="What volunteering costs the volunteer.")


@dataclass(frozen=True)
class Start(Event):
    pass


@dataclass(frozen=True)
class End(Event):
    volunteers: tuple[bool, ...]


class Volunteer(Game[VolunteerConfig, bool]):
    """Each round everyone gets 1 if anyone volunteers (a volunteer pays ``cost``), else 0."""

    name: ClassVar[str] = "volunteer"
    config_type: ClassVar[type[VolunteerConfig]] = VolunteerConfig
    reward_scale: ClassVar[float] = 1.0

    @classmethod
    def describe(cls, config: GameConfig) -> GameInfo:
        assert isinstance(config, VolunteerConfig)
        bounds = (0.0, 1.0)
        return GameInfo(config.players, True, bounds, cls.horizon_cap(config), False)

    def _deal(self, rng: np.random.Generator) -> tuple[Event, ...]:
        return tuple(Start(self.round) for _ in range(self.num_players))

    def _phases(self) -> list[Phase]:
        return [Phase(Kind.MOVE, tuple(range(self.num_players)))]

    def _validate_move(self, player: int, move: bool) -> None:
        if not isinstance(move, bool):
            raise IllegalAction(f"a move is True (volunteer) or False, got {move!r}")

    def _resolve(self, moves: tuple[bool, ...]) -> RoundOutcome:
        served = any(moves)
        rewards = tuple(float(served) - (self.config.cost if v else 0.0) for v in moves)
        events = tuple(End(self.round, moves) for _ in moves)
        return RoundOutcome(rewards, {"volunteered": list(moves)}, events)


class VolunteerProtocol(Protocol):
    game: ClassVar[str] = "volunteer"
    REPLIES: ClassVar[dict[str, bool]] = {"<A>": True, "<B>": False}

    def rules(self, game: Game, player: int) -> str:
        return f"volunteer. {game.num_players} players. <A> volunteer, <B> wait."

    def render_event(self, event: Event, player: int) -> str:
        if isinstance(event, End):
            return "volunteers " + "".join("A" if v else "B" for v in event.volunteers)
        return ""

    def instruction(self, kind: Kind) -> str:
        return "move?" if self.style is Style.COMPACT else "Reply <A> or <B>:"

    def parse_move(self, text: str) -> bool:
        if text.strip() not in self.REPLIES:
            raise InvalidReply("expected <A> or <B>")
        return self.REPLIES[text.strip()]

    def format_move(self, move: bool) -> str:
        return "<A>" if move else "<B>"

    def default_move(self) -> bool:
        return False

    def move_replies(self, events: Sequence[Event] = ()) -> tuple[str, ...]:
        return tuple(self.REPLIES)


class Hero(Bot):
    game: ClassVar[str] = "volunteer"
    bot_name = "hero"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> bool:
        return True


class Shirker(Bot):
    game: ClassVar[str] = "volunteer"
    bot_name = "shirker"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> bool:
        return False


def volunteer_rate(seats: Sequence[tuple[GameRecord, int]]) -> dict[str, float]:
    rounds = [info["volunteered"][p] for record, p in seats for info in record.infos]
    return {"volunteer_rate": sum(rounds) / len(rounds)}


ENTRY = GameEntry(
    "volunteer",
    rules=Volunteer,
    protocol=VolunteerProtocol,
    bots=(Hero, Shirker),
    measures=volunteer_rate,
    columns={"volunteered": "volunteers"},
    preset={
        "game": {"name": "volunteer"},
        "train": {"games_per_iteration": 8, "group_size": 1, "gamma": 0.9},
        "eval": {"bots": ["hero", "shirker"]},
    },
)


@pytest.fixture
def volunteer() -> Iterator[GameEntry]:
    register_game(ENTRY)  # the one registration
    yield ENTRY
    unregister_game(ENTRY.name)


# ---- the pipeline, untouched ------------------------------------------------------------------


def test_a_game_defined_here_trains_faces_off_and_is_reported(volunteer, tmp_path, tiny_overrides):
    run = tmp_path / "run"
    config = load_config("volunteer-adalign-tiny", [*tiny_overrides, "train.iterations=2"])
    assert config.game.name == "volunteer" and config.eval.bots == ["hero", "shirker"]
    Trainer.create(config, run).run(progress=False)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"volunteer_rate"' in lines[-1]

    agents = [make_agent(f"run:{run}", "volunteer"), make_agent("bot:hero", "volunteer"),
              make_agent("bot:shirker", "volunteer")]  # fmt: skip
    result, records = faceoff("volunteer", agents, make_protocol("volunteer", "compact"), 2)
    assert {len(r.seats) for r in records} == {3}
    hero, shirker = result.agents.index("bot:hero"), result.agents.index("bot:shirker")
    # a shirker among heroes is served for free; a hero among shirkers pays alone
    assert result.mean_reward[shirker][hero] == 1.0
    assert result.mean_reward[hero][shirker] == 0.5
    assert result.measures["volunteer_rate"][hero][shirker] == 1.0
    result.write_json(run / "faceoff.json")

    page = write_report(run).read_text()
    assert "<th>volunteers</th>" in page  # its round infos, as its registration labels them


def test_an_unregistered_game_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown preset 'volunteer-naive-tiny'"):
        load_config("volunteer-naive-tiny")
