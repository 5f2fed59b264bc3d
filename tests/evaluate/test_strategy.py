"""Memory-one estimates of IPD agents from probe games, the nearest named strategy, and the
Ashlock fingerprint."""

from __future__ import annotations

import pytest

from detente.agents import make_agent
from detente.evaluate.strategy import PROBES, estimate, fingerprint, memory_one, named_strategies
from detente.games.ipd import IPDConfig
from detente.protocol import make_protocol
from detente.rollout.records import GameRecord


def probe(name: str, games: int = 6):
    probes = [make_agent(p, "ipd") for p in PROBES]
    return memory_one(make_agent(name, "ipd"), probes, make_protocol("ipd"), games)


@pytest.mark.parametrize(
    ("bot", "p", "nearest"),
    [
        ("bot:tit-for-tat", {"CC": 1, "CD": 0, "DC": 1, "DD": 0, "first": 1}, "TFT"),
        ("bot:always-defect", {"CC": None, "CD": None, "DC": 0, "DD": 0, "first": 0}, "ALLD"),
        ("bot:always-cooperate", {"CC": 1, "CD": 1, "DC": None, "DD": None, "first": 1}, "ALLC"),
        ("bot:wsls", {"CC": 1, "CD": 0, "DC": 0, "DD": 1, "first": 1}, "WSLS"),
        ("bot:grim", {"CC": 1, "CD": 0, "DC": 0, "DD": 0, "first": 1}, "GRIM"),
    ],
)
def test_deterministic_bots_are_recognised(bot, p, nearest):
    result = probe(bot)
    assert result.p == p
    assert (result.nearest, result.distance) == (nearest, 0.0)
    assert sum(result.counts.values()) == 6 * 2 * len(PROBES) * 10


def test_the_forgiving_bot_is_nearest_to_generous_tit_for_tat():
    result = probe("bot:forgiving", games=20)
    assert result.nearest == "GTFT"
    assert result.p["CC"] == pytest.approx(0.95, abs=0.05)
    assert result.p["CD"] == pytest.approx(0.6, abs=0.12)


def test_estimate_counts_states_from_the_previous_round():
    record = GameRecord("g", "ipd", 0, 0, 4, [(0, 0)] * 4,
                        [{"moves": m} for m in (["C", "D"], ["D", "D"], ["C", "C"], ["C", "D"])],
                        seats=())  # type: ignore[arg-type]
    result = estimate("x", [(record, 0)])
    # first C; after CD: D; after DD: C; after CC: C
    assert result.p == {"CC": 1.0, "CD": 0.0, "DC": None, "DD": 1.0, "first": 1.0}
    assert result.counts == {"CC": 1, "CD": 1, "DC": 0, "DD": 1, "first": 1}
    other = estimate("x", [(record, 1)])
    # seat 1 plays D, D, C, D: first D; after DC: D; after DD: C; after CC: D
    assert other.p == {"CC": 0.0, "CD": None, "DC": 0.0, "DD": 1.0, "first": 0.0}


def test_generosity_follows_the_payoffs():
    assert named_strategies()["GTFT"][1] == pytest.approx(1 / 3)
    config = IPDConfig(reward=4, sucker=0, temptation=5, punishment=1)
    assert named_strategies(config)["GTFT"][1] == pytest.approx(min(1 - 1 / 4, 3 / 4))


def test_fingerprint_plot(tmp_path):
    path = fingerprint(make_agent("bot:tit-for-tat", "ipd"), tmp_path / "fp.png", "full",
                       step=0.5, turns=5, repetitions=1)
    assert path.is_file() and path.stat().st_size > 1000
