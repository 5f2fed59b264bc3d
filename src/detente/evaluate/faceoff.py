"""Face-off matrices: every pair of agents, every seat, many games.

Cell (i, j) is the row agent i's mean reward per round against column agent j, with a 95%
confidence interval over games. Two players: averaged over the games where i sits as Alice and
those where it sits as Bob. N players: i is the focal agent among N − 1 copies of j (the cell of
an invasion analysis), in each seat in turn. The diagonal is self-play (every seat i). Games of
every cell use the same environment seeds (common random numbers). A mixed population (any
agents in the N seats) is played by :func:`population_faceoff`.

Per agent, over its own decisions only (a bot's turns never dilute an API agent's): the share
that ended on the default move (``invalid_rates``), how many of those got no reply at all from
an API (``gave_up``, e.g. a server down, with ``on_failure=continue``), and its replies' usage
summed (``usage``: an API's prompt and completion tokens, transport and format retries and
decisions given up; a language model's tokens).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from detente.evaluate.metrics import game_measures
from detente.evaluate.stats import mean_ci95
from detente.games import GameConfig, make_game
from detente.policies.base import Policy
from detente.protocol.base import Protocol
from detente.rollout.records import GameRecord
from detente.rollout.runner import InvalidReplyConfig, Match, invalid_rate, play

API_USAGE = frozenset({"transport_retries", "format_retries", "gave_up"})  # an API's reply keys


def usage_text(usage: Mapping[str, int]) -> str:
    """An API agent's summed usage: tokens, retries and decisions given up."""
    return (
        f"{usage.get('prompt_tokens', 0)} prompt + {usage.get('completion_tokens', 0)} "
        f"completion tokens, {usage.get('transport_retries', 0)} transport retries, "
        f"{usage.get('format_retries', 0)} format retries, {usage.get('gave_up', 0)} given up"
    )


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
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # per agent: replies' usage

    def reply_problems(self) -> list[str]:
        """One line per agent with invalid replies or API calls: its own rate, the decisions
        its API gave no reply for, and its API usage (tokens, retries)."""
        lines = []
        for agent in self.agents:
            rate, lost = self.invalid_rates.get(agent, 0.0), self.gave_up.get(agent, 0)
            usage = self.usage.get(agent, {})
            parts = []
            if rate or lost:
                parts.append(f"invalid-reply rate {rate:.3f} of {self.decisions[agent]} decisions")
            if lost:
                parts.append(f"{lost} got no reply from the API (default move played)")
            if API_USAGE & usage.keys():
                parts.append(
                    f"API usage over {self.decisions[agent]} decisions: {usage_text(usage)}"
                )
            if parts:
                lines.append(f"{agent}: " + "; ".join(parts))
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


def self_play_note(players: int) -> str:
    """What the table's diagonal (and, with N players, a cell) holds."""
    if players == 2:
        return "diagonal: each agent against a copy of itself (self-play), the mean over both seats"
    return (
        f"cell (row, column): the row agent in one seat, the column agent in the other "
        f"{players - 1}; diagonal: each agent in every seat (self-play), the mean over the seats"
    )

SeatT = TypeVar("SeatT")


def focal_lineup(focal: SeatT, background: SeatT, players: int, seat: int) -> tuple[SeatT, ...]:
    """``focal`` in ``seat`` and ``background`` in every other seat of a ``players``-seat game."""
    return tuple(focal if p == seat else background for p in range(players))


def seat_plans(agents: int, players: int) -> list[tuple[int, ...]]:
    """The line-ups of a face-off, as agent indices per seat: for every unordered pair {i, j}
    (i ≤ j), i focal in each seat among copies of j, then j focal among copies of i; self-play
    (i = j) once. With two players: both seat orders of every pair."""
    plans = []
    for i in range(agents):
        for j in range(i, agents):
            if i == j:
                plans.append((i,) * players)
                continue
            for focal, background in ((i, j), (j, i)):
                plans.extend(focal_lineup(focal, background, players, s) for s in range(players))
    return list(dict.fromkeys(plans))  # two players: (i, j) as focal j's line-up is (i, j) again


def cells_of(plan: Sequence[int]) -> dict[tuple[int, int], list[int]]:
    """The matrix cells a line-up informs, with the seats that do: seat s of agent a informs
    (a, b) when every other seat holds the one agent b (self-play: (a, a), every seat)."""
    out: dict[tuple[int, int], list[int]] = {}
    for seat, agent in enumerate(plan):
        rest = {plan[p] for p in range(len(plan)) if p != seat}
        if len(rest) == 1:
            out.setdefault((agent, rest.pop()), []).append(seat)
    return out


def _finite_or_none(matrix: list[list[float]]) -> list[list[float | None]]:
    return [[v if math.isfinite(v) else None for v in row] for row in matrix]


def pair_matches(
    game_name: str,
    config: GameConfig | None,
    agents: Sequence[Policy],
    games: int,
    seed: int,
) -> list[tuple[tuple[int, ...], Match]]:
    """(line-up, match) for every line-up of :func:`seat_plans`, ``games`` games each (game k
    on environment seed ``seed + k``)."""
    out = []
    players = make_game(game_name, config, seed).num_players
    for plan in seat_plans(len(agents), players):
        for k in range(games):
            game = make_game(game_name, config, seed + k)
            policies = tuple(agents[a] for a in plan)
            match = Match(game, policies, "-".join(map(str, plan)) + f"-{k}", group=k)
            out.append((plan, match))
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
    """Play every line-up at once (one batch per policy per step) and tabulate."""
    names = [a.name for a in agents]
    if len(set(names)) != len(names):
        raise ValueError(f"agent names must be distinct: {names}")
    planned = pair_matches(game_name, config, agents, games, seed)
    records = play([m for _, m in planned], protocol, invalid, seed, on_step)
    samples: dict[tuple[int, int], list[float]] = {}
    seats: dict[tuple[int, int], list[tuple[GameRecord, int]]] = {}
    for (plan, _), record in zip(planned, records, strict=True):
        for cell, cell_seats in cells_of(plan).items():
            rewards = [record.mean_reward(s) for s in cell_seats]
            samples.setdefault(cell, []).append(sum(rewards) / len(rewards))
            seats.setdefault(cell, []).extend((record, s) for s in cell_seats)
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
    usage = agent_usage(records)
    result = FaceoffResult(
        names, mean, ci, games, invalid_rate(records), measures,
        decisions={a: decisions[a] for a in names},
        invalid_rates=rates,
        gave_up={a: gave_up[a] for a in names},
        usage={a: dict(usage[a]) for a in names},
    )
    return result, records


@dataclass
class PopulationResult:
    """A mixed population's face-off: per distinct agent, its mean reward per round (over its
    seats and games) ± 95% CI over games, and its behaviour measures."""

    lineup: list[str]  # the agent of each seat, as given
    games: int  # games per rotation of the line-up
    reward: dict[str, float]
    ci95: dict[str, float]
    measures: dict[str, dict[str, float]]
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # replies' usage, summed

    def table(self) -> str:
        width = max(len(a) for a in self.reward) + 2
        lines = ["agent".ljust(width) + "reward per round (± 95% CI)"]
        for agent, value in self.reward.items():
            half = self.ci95[agent]
            cell = f"{value:.2f} ± {half:.2f}" if math.isfinite(half) else f"{value:.2f}"
            lines.append(agent.ljust(width) + cell)
        lines += [
            f"{agent}: API usage: {usage_text(used)}"
            for agent, used in self.usage.items()
            if API_USAGE & used.keys()
        ]
        return "\n".join(lines)

    def to_json(self) -> dict:
        data = asdict(self)
        data["ci95"] = {k: v if math.isfinite(v) else None for k, v in self.ci95.items()}
        data["measures"] = {
            a: {k: v if math.isfinite(v) else None for k, v in m.items()}
            for a, m in self.measures.items()
        }
        return data


def population_faceoff(
    game_name: str,
    lineup: Sequence[Policy],
    protocol: Protocol,
    games: int,
    seed: int = 0,
    config: GameConfig | None = None,
    invalid: InvalidReplyConfig | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[PopulationResult, list[GameRecord]]:
    """The agents of ``lineup`` (one per seat; an agent may hold several seats) in every cyclic
    rotation of the seats, ``games`` games each on seeds ``seed + k``; per distinct agent, the
    mean over games of its mean reward over its seats."""
    players = make_game(game_name, config, seed).num_players
    if len(lineup) != players:
        raise ValueError(f"{game_name} has {players} seats; the population lists {len(lineup)}")
    matches = []
    for shift in range(players):
        rotated = tuple(lineup[(p - shift) % players] for p in range(players))
        for k in range(games):
            game = make_game(game_name, config, seed + k)
            matches.append(Match(game, rotated, f"rot{shift}-{k}", group=k))
    records = play(matches, protocol, invalid, seed, on_step)
    reward, ci95, measures = {}, {}, {}
    for name in dict.fromkeys(p.name for p in lineup):
        seats = [(r, s) for r, m in zip(records, matches, strict=True)
                 for s, policy in enumerate(m.policies) if policy.name == name]  # fmt: skip
        per_game: dict[str, list[float]] = {}
        for record, s in seats:
            per_game.setdefault(record.game_id, []).append(record.mean_reward(s))
        reward[name], ci95[name] = mean_ci95([sum(v) / len(v) for v in per_game.values()])
        measures[name] = game_measures(game_name, seats)
    names = [p.name for p in lineup]
    usage = {name: dict(total) for name, total in agent_usage(records).items()}
    return PopulationResult(names, games, reward, ci95, measures, usage), records


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


def agent_usage(records: Sequence[GameRecord]) -> dict[str, Counter[str]]:
    """Per agent name: its replies' ``usage`` summed over its decisions (an API's tokens,
    transport and format retries and give-ups; a language model's tokens; empty for a bot)."""
    usage: dict[str, Counter[str]] = {}
    for record in records:
        for seat in record.seats:
            total = usage.setdefault(seat.agent, Counter())
            for turn in seat.turns:
                total.update(turn.usage)
    return usage


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
    """``agent`` against each opponent (in every other seat), ``games`` games per seat of the
    agent (game k of every opponent and seat on environment seed ``env_seed + k``), all played
    in one batch.

    Per opponent name: the agent's mean reward per round (mean over games of every seat) and
    the 95% CI half-width over games (None from a single game), the opponent's reward, the
    agent's behaviour measures (``game_measures``) and its invalid-reply rate."""
    planned = []
    players = make_game(game_name, config, env_seed).num_players
    for j, opponent in enumerate(opponents):
        for seat in range(players):
            for k in range(games):
                lineup = focal_lineup(agent, opponent, players, seat)
                game = make_game(game_name, config, env_seed + k)
                planned.append((j, seat, Match(game, lineup, f"eval-{j}-{seat}-{k}", group=k)))
    records = play([m for _, _, m in planned], protocol, invalid, sampling_seed)
    out: dict[str, dict[str, float | None]] = {}
    for j, opponent in enumerate(opponents):
        seats = [(r, s) for (o, s, _), r in zip(planned, records, strict=True) if o == j]
        mean, half = mean_ci95([r.mean_reward(s) for r, s in seats])
        turns = [t for r, s in seats for t in r.seats[s].turns]
        theirs = [r.mean_reward(q) for r, s in seats for q in r.co_players(s)]
        line: dict[str, float | None] = {
            "reward": mean,
            "ci95": half if math.isfinite(half) else None,
            "opponent_reward": math.fsum(theirs) / len(theirs),
        }
        for key, value in game_measures(game_name, seats).items():
            line[key] = value if math.isfinite(value) else None
        line["invalid_rate"] = sum(t.invalid for t in turns) / len(turns) if turns else None
        out[opponent.name] = line
    return out
