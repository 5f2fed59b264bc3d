"""What strategy did an IPD agent learn? Its memory-one estimate and the nearest named strategy.

The memory-one estimate is, from probe games (the agent against probe opponents, both seats),
p = (P(C | CC), P(C | CD), P(C | DC), P(C | DD), P(C first)), where state XY is the previous
round's (own move, other's move); a state never reached is None. The named strategies are the
memory-one vectors

    ALLC (1, 1, 1, 1; 1)   ALLD (0, 0, 0, 0; 0)   TFT (1, 0, 1, 0; 1)
    GTFT (1, g, 1, g; 1)   GRIM (1, 0, 0, 0; 1)   WSLS (1, 0, 0, 1; 1)

with GTFT's generosity g = min(1 − (T − R)/(R − S), (R − P)/(T − P)) (Nowak and Sigmund; 1/3
with the default payoffs), and GRIM's projection on memory one (after its own defection it never
cooperates again). The nearest is the one at the least root-mean-square distance over the
entries the probes reached (a tie goes to the first in the order above). Axelrod's Ashlock
fingerprint (against Joss-Ann probes of Tit For Tat) is drawn by :func:`fingerprint` (the
``league`` extra).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from detente.games import make_game
from detente.games.ipd import IPDConfig
from detente.policies.base import Policy
from detente.protocol.base import Protocol
from detente.rollout.records import GameRecord
from detente.rollout.runner import InvalidReplyConfig, Match, play

ENTRIES = ("CC", "CD", "DC", "DD", "first")
PROBES = ("bot:random", "bot:tit-for-tat", "bot:always-defect", "bot:always-cooperate")


def generosity(config: IPDConfig) -> float:
    """GTFT's P(C | the other defected): min(1 − (T − R)/(R − S), (R − P)/(T − P))."""
    r, s, t, p = config.reward, config.sucker, config.temptation, config.punishment
    return min(1 - (t - r) / (r - s), (r - p) / (t - p))


def named_strategies(config: IPDConfig | None = None) -> dict[str, tuple[float, ...]]:
    """The memory-one vectors (CC, CD, DC, DD, first) of the named strategies."""
    g = generosity(config or IPDConfig())
    return {
        "ALLC": (1, 1, 1, 1, 1),
        "ALLD": (0, 0, 0, 0, 0),
        "TFT": (1, 0, 1, 0, 1),
        "GTFT": (1, g, 1, g, 1),
        "GRIM": (1, 0, 0, 0, 1),
        "WSLS": (1, 0, 0, 1, 1),
    }


@dataclass
class MemoryOne:
    """An agent's memory-one estimate, the decisions behind each entry, and the nearest named
    strategy with every distance."""

    agent: str
    p: dict[str, float | None]
    counts: dict[str, int]
    nearest: str
    distance: float
    distances: dict[str, float]
    fingerprint: str | None = None  # the plot's file name, when drawn

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def count_states(seats: Sequence[tuple[GameRecord, int]]) -> tuple[dict[str, int], dict[str, int]]:
    """(decisions, cooperations) per entry over the given (record, seat) pairs."""
    decisions = dict.fromkeys(ENTRIES, 0)
    cooperations = dict.fromkeys(ENTRIES, 0)
    for record, p in seats:
        moves = [info["moves"] for info in record.infos]
        for t, pair in enumerate(moves):
            key = "first" if t == 0 else moves[t - 1][p] + moves[t - 1][1 - p]
            decisions[key] += 1
            cooperations[key] += pair[p] == "C"
    return decisions, cooperations


def estimate(
    agent: str, seats: Sequence[tuple[GameRecord, int]], config: IPDConfig | None = None
) -> MemoryOne:
    """The memory-one estimate of the agent in ``seats`` and the nearest named strategy."""
    decisions, cooperations = count_states(seats)
    p = {k: cooperations[k] / decisions[k] if decisions[k] else None for k in ENTRIES}
    reached = [i for i, k in enumerate(ENTRIES) if p[k] is not None]
    distances = {}
    for name, vector in named_strategies(config).items():
        squares = [(p[ENTRIES[i]] - vector[i]) ** 2 for i in reached]
        distances[name] = math.sqrt(math.fsum(squares) / len(squares)) if squares else math.nan
    nearest = min(distances, key=distances.__getitem__)  # a tie: the first listed
    return MemoryOne(agent, p, decisions, nearest, distances[nearest], distances)


def probe_records(
    agent: Policy,
    probes: Sequence[Policy],
    protocol: Protocol,
    games: int,
    seed: int = 0,
    config: IPDConfig | None = None,
    invalid: InvalidReplyConfig | None = None,
) -> list[tuple[GameRecord, int]]:
    """(record, the agent's seat) of ``games`` games per probe and seat, played in one batch."""
    matches, seats = [], []
    for i, probe in enumerate(probes):
        for seat in (0, 1):
            for k in range(games):
                game = make_game("ipd", config, seed + k)
                policies = (agent, probe) if seat == 0 else (probe, agent)
                matches.append(Match(game, policies, f"probe-{i}-{seat}-{k}", group=k))
                seats.append(seat)
    records = play(matches, protocol, invalid, seed)
    return list(zip(records, seats, strict=True))


def memory_one(
    agent: Policy,
    probes: Sequence[Policy],
    protocol: Protocol,
    games: int,
    seed: int = 0,
    config: IPDConfig | None = None,
    invalid: InvalidReplyConfig | None = None,
) -> MemoryOne:
    """Probe games, then :func:`estimate`."""
    seats = probe_records(agent, probes, protocol, games, seed, config, invalid)
    return estimate(agent.name, seats, config)


def fingerprint(
    agent: Policy,
    path: Path,
    style: str,
    constrain_moves: bool = False,
    step: float = 0.25,
    turns: int = 10,
    repetitions: int = 2,
    seed: int = 0,
) -> Path:
    """Axelrod's Ashlock fingerprint of the agent (its mean score against Joss-Ann probes of
    Tit For Tat over the unit square, ``step`` apart), as a PNG at ``path``."""
    import axelrod as axl
    import matplotlib.pyplot as plt

    from detente.evaluate.axelrod_player import DetentePlayer

    ashlock = axl.AshlockFingerprint(DetentePlayer(agent, style, constrain_moves), axl.TitForTat)
    ashlock.fingerprint(turns=turns, repetitions=repetitions, step=step, progress_bar=False,
                        seed=seed)  # fmt: skip
    figure = ashlock.plot(title=f"Ashlock fingerprint of {agent.name}".replace("$", r"\$"))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)
    return path
