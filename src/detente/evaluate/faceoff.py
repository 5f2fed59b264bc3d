"""Face-off matrices: every pair of agents, both seat orders, many games.

Cell (i, j) is the row agent i's mean reward per round against column agent j, averaged over
the games where i sits as Alice and those where it sits as Bob, with a 95% confidence interval
over games. Games of every pair use the same environment seeds (common random numbers).

Per agent, over its own decisions only (a bot's turns never dilute an API agent's): the share
that ended on the default move (``invalid_rates``), and how many of those got no reply at all
from an API (``gave_up``, e.g. a server down, with ``on_failure=continue``).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from detente.evaluate.metrics import game_measures
from detente.evaluate.stats import mean_ci95
from detente.games import GameConfig, make_game
from detente.policies.base import Policy
from detente.protocol.base import Protocol
from detente.rollout.records import GameRecord
from detente.rollout.runner import InvalidReplyConfig, Match, invalid_rate, play


@dataclass
class FaceoffResult:
    agents: list[str]
    mean_reward: list[list[float]]
    ci95: list[list[float]]
    games: int  # games per seat order of each pair
    invalid_rate: float
    measures: dict[str, list[list[float]]] = field(default_factory=dict)  # row agent's behaviour
    decisions: dict[str, int] = field(default_factory=dict)  # per agent: decisions made
    invalid_rates: dict[str, float] = field(default_factory=dict)  # per agent: default move used
    gave_up: dict[str, int] = field(default_factory=dict)  # per agent: no reply from its API

    def reply_problems(self) -> list[str]:
        """One line per agent with invalid replies: its own rate, and the decisions its API
        gave no reply for."""
        lines = []
        for agent in self.agents:
            rate, lost = self.invalid_rates.get(agent, 0.0), self.gave_up.get(agent, 0)
            if rate or lost:
                line = f"{agent}: invalid-reply rate {rate:.3f} of {self.decisions[agent]} decisions"
                if lost:
                    line += f"; {lost} got no reply from the API (default move played)"
                lines.append(line)
        return lines

    def to_json(self) -> dict:
        """Plain JSON (an infinite half-width, from a single game, becomes null)."""
        data = asdict(self)
        data["ci95"] = _finite_or_none(self.ci95)
        data["measures"] = {k: _finite_or_none(v) for k, v in self.measures.items()}
        return data

    def write_csv(self, path: Path) -> None:
        """One line per (row, column) cell: mean reward, CI half-width, behaviour measures."""
        names = sorted(self.measures)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["row", "column", "mean_reward", "ci95", *names])
            for i, row in enumerate(self.agents):
                for j, column in enumerate(self.agents):
                    values = [self.mean_reward[i][j], self.ci95[i][j],
                              *(self.measures[k][i][j] for k in names)]  # fmt: skip
                    # missing (NaN) or unbounded (a single game's CI): empty, as JSON's null
                    writer.writerow([row, column, *("" if not math.isfinite(v) else v
                                                    for v in values)])  # fmt: skip

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2))

    def table(self) -> str:
        """A plain-text table: row agent's mean reward per round ± 95% CI half-width (a single
        game has none: the mean alone)."""
        cells = [
            [f"{m:.2f} ± {c:.2f}" if math.isfinite(c) else f"{m:.2f}"
             for m, c in zip(row, ci_row, strict=True)]  # fmt: skip
            for row, ci_row in zip(self.mean_reward, self.ci95, strict=True)
        ]
        return _text_table(self.agents, cells)

    def measure_tables(self) -> list[str]:
        """Per behaviour measure, a plain-text table of the row agent's value against each
        column agent (``–``: nothing to measure)."""
        out = []
        for key in sorted(self.measures):
            cells = [[f"{v:.2f}" if math.isfinite(v) else "–" for v in row]
                     for row in self.measures[key]]  # fmt: skip
            out.append(f"{key} of the row agent\n" + _text_table(self.agents, cells))
        return out


def _text_table(agents: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    width = max(len(s) for s in [*agents, *(c for row in cells for c in row)]) + 2
    header = "row vs column".ljust(width) + "".join(a.ljust(width) for a in agents)
    lines = [header]
    for agent, row in zip(agents, cells, strict=True):
        lines.append(agent.ljust(width) + "".join(c.ljust(width) for c in row))
    return "\n".join(lines)


SELF_PLAY_NOTE = (
    "diagonal: each agent against a copy of itself (self-play), the mean over both seats"
)


def _finite_or_none(matrix: list[list[float]]) -> list[list[float | None]]:
    return [[v if math.isfinite(v) else None for v in row] for row in matrix]


def pair_matches(
    game_name: str,
    config: GameConfig | None,
    agents: Sequence[Policy],
    games: int,
    seed: int,
) -> list[tuple[int, int, Match]]:
    """(row, column, match) for every unordered pair and both seat orders (self-play once)."""
    out = []
    for i in range(len(agents)):
        for j in range(i, len(agents)):
            orders = [(i, j)] if i == j else [(i, j), (j, i)]
            for alice, bob in orders:
                for k in range(games):
                    game = make_game(game_name, config, seed + k)
                    match = Match(game, (agents[alice], agents[bob]), f"{alice}-{bob}-{k}", group=k)
                    out.append((alice, bob, match))
    return out


def faceoff(
    game_name: str,
    agents: Sequence[Policy],
    protocol: Protocol,
    games: int,
    seed: int = 0,
    config: GameConfig | None = None,
    invalid: InvalidReplyConfig | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[FaceoffResult, list[GameRecord]]:
    """Play all pairs at once (one batch per policy per step) and tabulate."""
    names = [a.name for a in agents]
    if len(set(names)) != len(names):
        raise ValueError(f"agent names must be distinct: {names}")
    planned = pair_matches(game_name, config, agents, games, seed)
    records = play([m for _, _, m in planned], protocol, invalid, seed, on_step)
    samples: dict[tuple[int, int], list[float]] = {}
    seats: dict[tuple[int, int], list[tuple[GameRecord, int]]] = {}
    for (alice, bob), record in zip(((a, b) for a, b, _ in planned), records, strict=True):
        if alice == bob:
            value = (record.mean_reward(0) + record.mean_reward(1)) / 2
            samples.setdefault((alice, alice), []).append(value)
            seats.setdefault((alice, alice), []).extend([(record, 0), (record, 1)])
        else:
            samples.setdefault((alice, bob), []).append(record.mean_reward(0))
            samples.setdefault((bob, alice), []).append(record.mean_reward(1))
            seats.setdefault((alice, bob), []).append((record, 0))
            seats.setdefault((bob, alice), []).append((record, 1))
    n = len(agents)
    mean = [[0.0] * n for _ in range(n)]
    ci = [[0.0] * n for _ in range(n)]
    measures: dict[str, list[list[float]]] = {}
    for (row, column), values in samples.items():
        mean[row][column], ci[row][column] = mean_ci95(values)
        for key, value in game_measures(game_name, seats[(row, column)]).items():
            measures.setdefault(key, [[math.nan] * n for _ in range(n)])[row][column] = value
    decisions, invalid, gave_up = agent_reply_counts(records)
    rates = {a: invalid[a] / decisions[a] if decisions[a] else 0.0 for a in names}
    result = FaceoffResult(
        names, mean, ci, games, invalid_rate(records), measures,
        decisions={a: decisions[a] for a in names},
        invalid_rates=rates,
        gave_up={a: gave_up[a] for a in names},
    )
    return result, records


def agent_reply_counts(
    records: Sequence[GameRecord],
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Per agent name: decisions, those ending on the default move, and those of which the last
    reply came with no completion from an API (``usage["gave_up"]``)."""
    decisions: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    gave_up: Counter[str] = Counter()
    for record in records:
        for seat in record.seats:
            for turn in seat.turns:
                decisions[seat.agent] += 1
                invalid[seat.agent] += turn.invalid
                gave_up[seat.agent] += bool(turn.invalid and turn.usage.get("gave_up"))
    return decisions, invalid, gave_up


def against_opponents(
    game_name: str,
    agent: Policy,
    opponents: Sequence[Policy],
    protocol: Protocol,
    games: int,
    env_seed: int,
    sampling_seed: int,
    config: GameConfig | None = None,
    invalid: InvalidReplyConfig | None = None,
) -> dict[str, dict[str, float | None]]:
    """``agent`` against each opponent, ``games`` games per seat order (game k of every
    opponent and seat on environment seed ``env_seed + k``), all played in one batch.

    Per opponent name: the agent's mean reward per round (mean over games of both seats) and
    the 95% CI half-width over games (None from a single game), the opponent's reward, the
    agent's behaviour measures (``game_measures``) and its invalid-reply rate."""
    planned = []
    for j, opponent in enumerate(opponents):
        for seat in (0, 1):
            for k in range(games):
                pair = (agent, opponent) if seat == 0 else (opponent, agent)
                game = make_game(game_name, config, env_seed + k)
                planned.append((j, seat, Match(game, pair, f"eval-{j}-{seat}-{k}", group=k)))
    records = play([m for _, _, m in planned], protocol, invalid, sampling_seed)
    out: dict[str, dict[str, float | None]] = {}
    for j, opponent in enumerate(opponents):
        seats = [(r, s) for (o, s, _), r in zip(planned, records, strict=True) if o == j]
        mean, half = mean_ci95([r.mean_reward(s) for r, s in seats])
        turns = [t for r, s in seats for t in r.seats[s].turns]
        line: dict[str, float | None] = {
            "reward": mean,
            "ci95": half if math.isfinite(half) else None,
            "opponent_reward": math.fsum(r.mean_reward(1 - s) for r, s in seats) / len(seats),
        }
        for key, value in game_measures(game_name, seats).items():
            line[key] = value if math.isfinite(value) else None
        line["invalid_rate"] = sum(t.invalid for t in turns) / len(turns) if turns else None
        out[opponent.name] = line
    return out
