"""A model's prior, measured on purpose: its conditional behaviour against scripted probes.

IPD (probes ``random`` and ``alternator``, which defect at random or fixed rounds, so both
states occur off self-play, and self-play): P(C) in the first round, P(C | the other cooperated
in the previous round), P(C | the other defected).

Trust-and-Split (probes ``honest``, which reports truthfully and claims by the hands, and
``greedy``, which reports truthfully and keeps every coin, so it cheats whenever it holds the
lower hand; and self-play):
- ``honesty``: share of the model's messages naming a hand that name its true hand;
- ``follows_hands``: in rounds where both players' reports were true, the share of claims on the
  side the hands decide (more than half the coins with the upper hand, less with the lower);
- ``claim_upper`` / ``claim_lower``: coins claimed with each hand;
- ``concede_after_cheated`` / ``concede_otherwise``: with the lower hand, the share of claims of
  at most half the coins right after a round in which the other kept coins with the lower hand
  (was cheated), and after any other round — forgiveness is the first close to the second.

Each measure is a mean over decisions with its 95% Wilson interval half-width and count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detente.evaluate.faceoff import faceoff
from detente.evaluate.metrics import hand_report
from detente.games import GameConfig, game_entry, game_names
from detente.policies.base import Policy
from detente.policies.bots import make_bot
from detente.protocol.base import Protocol
from detente.rollout.records import GameRecord

Seats = Sequence[tuple[GameRecord, int]]


@dataclass(frozen=True)
class Rate:
    """A share of ``count`` decisions with its 95% Wilson half-width."""

    value: float
    half_width: float
    count: int

    @classmethod
    def of(cls, outcomes: Sequence[bool]) -> Rate:
        """p̂ = k/n; Wilson half-width z·sqrt(p̂(1−p̂)/n + z²/4n²)/(1 + z²/n), z = 1.96."""
        n = len(outcomes)
        if n == 0:
            return cls(math.nan, math.nan, 0)
        p, z = sum(outcomes) / n, 1.96
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return cls(p, half, n)

    @classmethod
    def mean(cls, values: Sequence[float]) -> Rate:
        """A plain mean (no interval), e.g. coins claimed."""
        return cls(sum(values) / len(values), math.nan, len(values)) if values else cls.of([])

    def to_json(self) -> dict[str, Any]:
        value = None if math.isnan(self.value) else round(self.value, 4)
        half = None if math.isnan(self.half_width) else round(self.half_width, 4)
        return {"value": value, "ci95": half, "n": self.count}


def ipd_prior(seats: Seats) -> dict[str, Rate]:
    """P(C) first round, P(C | other C), P(C | other D) of the given seats."""
    first, after_c, after_d = [], [], []
    for record, p in seats:
        moves = [info["moves"] for info in record.infos]
        for t, pair in enumerate(moves):
            cooperated = pair[p] == "C"
            if t == 0:
                first.append(cooperated)
            else:
                (after_c if moves[t - 1][1 - p] == "C" else after_d).append(cooperated)
    return {
        "p_coop_first": Rate.of(first),
        "p_coop_after_c": Rate.of(after_c),
        "p_coop_after_d": Rate.of(after_d),
    }


def _reports(record: GameRecord, player: int) -> dict[int, list[bool]]:
    """Per round, whether each of ``player``'s hand reports was true."""
    out: dict[int, list[bool]] = {}
    for turn in record.seats[player].turns:
        report = hand_report(record, turn, player)
        if report is not None:
            out.setdefault(turn.round, []).append(report[0] == report[1])
    return out


def trust_split_prior(seats: Seats) -> dict[str, Rate]:
    """Honesty, claims that follow the hands under honest reports, forgiveness (module doc)."""
    honesty, follows, after_cheat, otherwise = [], [], [], []
    upper_claims, lower_claims = [], []
    for record, p in seats:
        own, other = _reports(record, p), _reports(record, 1 - p)
        honesty += [v for values in own.values() for v in values]
        for t, info in enumerate(record.infos):
            claim, half, has_upper = info["claims"][p], info["coins"] / 2, info["upper"] == p
            (upper_claims if has_upper else lower_claims).append(claim)
            if own.get(t) and all(own[t]) and other.get(t) and all(other[t]):
                follows.append(claim > half if has_upper else claim < half)
            if not has_upper and t > 0:
                previous = record.infos[t - 1]
                cheated = previous["upper"] == p and previous["claims"][1 - p] > 0
                (after_cheat if cheated else otherwise).append(claim <= half)
    out = {
        "honesty": Rate.of(honesty),
        "follows_hands": Rate.of(follows),
        "concede_after_cheated": Rate.of(after_cheat),
        "concede_otherwise": Rate.of(otherwise),
    }
    out["claim_upper"], out["claim_lower"] = Rate.mean(upper_claims), Rate.mean(lower_claims)
    return out


def prior_games() -> list[str]:
    """The games whose registration defines prior measures (``GameEntry.prior``)."""
    return [g for g in game_names() if game_entry(g).prior is not None]


def measure_prior(
    game: str,
    model: Policy,
    protocol: Protocol,
    games: int,
    config: GameConfig | None = None,
    invalid: Any = None,
    seed: int = 20_000,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The model's prior measures against each probe and in self-play, ``games`` games per seat
    order: {"vs bot:NAME" | "self-play" | "all probes": {measure: {value, ci95, n}}}."""
    entry = game_entry(game)
    measure = entry.prior_fn()
    if measure is None:
        raise ValueError(f"prior probes exist for {', '.join(prior_games())}, not {game!r}")
    probes = [make_bot(game, name) for name in entry.prior_probes]
    _, records = faceoff(game, [model, *probes], protocol, games, seed, config, invalid)
    by_opponent: dict[str, list[tuple[GameRecord, int]]] = {}
    for record in records:
        for p in (0, 1):
            if record.seats[p].agent == model.name:
                other = record.seats[1 - p].agent
                key = "self-play" if other == model.name else f"vs {other}"
                by_opponent.setdefault(key, []).append((record, p))
    by_opponent["all probes"] = [s for k, v in by_opponent.items() if k != "self-play" for s in v]
    return {
        key: {name: rate.to_json() for name, rate in measure(seats).items()}
        for key, seats in by_opponent.items()
    }


def format_prior(prior: dict[str, dict[str, dict[str, Any]]]) -> str:
    """A terminal table: one row per opponent, ``value ± ci95`` per measure."""
    keys = list(next(iter(prior.values())))
    width = max(14, *(len(k) + 2 for k in keys))
    lines = ["opponent".ljust(16) + "".join(k.rjust(width) for k in keys)]
    for opponent, row in prior.items():
        cells = []
        for k in keys:
            v, h = row[k]["value"], row[k]["ci95"]
            text = "n/a" if v is None else (f"{v:.2f}" if h is None else f"{v:.2f}±{h:.2f}")
            cells.append(text.rjust(width))
        lines.append(opponent.ljust(16) + "".join(cells))
    return "\n".join(lines)


def write_prior(path: Path, game: str, prior: dict[str, Any], target: dict[str, float]) -> None:
    """``prior-GAME.json``: the measures and the targets the persona data implies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"game": game, "target": target, "measured": prior}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=False))
    tmp.replace(path)


# Models with CPU presets: their prior is probed as they train (style, game options, replies).
MODEL_SCALES = {
    "tiny": "tiny",
    "tiny-ipd": "tiny",
    "tiny-trust-split": "tiny",
    "tiny-public-goods": "tiny",
    "tiny-commons": "tiny",
    "tiny-test": "tiny",
    "smollm2-135m": "smollm2",
    "smollm2-135m-ipd": "smollm2",
}


def probe_model(model: str, game: str, games: int, seed: int = 20_000) -> dict[str, Any]:
    """Measure ``lm:MODEL``'s prior in ``game`` under the settings of its ``GAME-naive-SCALE``
    preset (the full style and default options for other models)."""
    from detente.agents import make_agent
    from detente.config import load_config
    from detente.protocol import make_protocol

    scale = MODEL_SCALES.get(model)
    overrides = [f"model.name={model}"] + ([] if scale is not None else ["game.style=full"])
    config = load_config(f"{game}-naive-{scale or 'tiny'}", overrides)
    protocol = make_protocol(game, config.game.style, config.game.game_config())
    agent = make_agent(f"lm:{model}", game)
    return measure_prior(game, agent, protocol, games, config.game.game_config(), config.invalid, seed)


def stored_prior_path(model: str, game: str) -> Path | None:
    """Where an embedded model keeps its measured prior (inside its cache folder), else None."""
    from detente.lm.models import cache_root
    from detente.recipes.embedded import embedded_directory

    folder = embedded_directory(model, cache_root())
    return None if folder is None else folder / f"prior-{game}.json"


def prior_with_model(model: str, game: str, games: int = 32) -> dict[str, Any]:
    """The prior stored with an embedded model, measured and stored on first use; for other
    models measured each time. {"game", "target", "measured"}."""
    from detente.recipes.warmstart import PRIOR_TARGETS

    path = stored_prior_path(model, game)
    if path is not None and path.is_file():
        return json.loads(path.read_text())
    measured = probe_model(model, game, games)
    target = PRIOR_TARGETS.get(game, {}) if path is not None else {}
    if path is not None and path.parent.is_dir():
        write_prior(path, game, measured, target)
    return {"game": game, "target": target, "measured": measured}
