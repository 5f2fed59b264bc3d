"""Prior probes: measures read exactly off scripted players whose behaviour is known."""

from __future__ import annotations

import json
import math

import pytest

from detente.cli import main
from detente.evaluate.prior import Rate, measure_prior, stored_prior_path
from detente.policies.bots import make_bot
from detente.protocol import make_protocol


def test_wilson_interval_matches_the_formula() -> None:
    rate = Rate.of([True] * 30 + [False] * 10)
    p, n, z = 0.75, 40, 1.96
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (rate.value, rate.count) == (0.75, 40) and rate.half_width == pytest.approx(half)
    assert math.isnan(Rate.of([]).value)


def test_ipd_prior_of_tit_for_tat_is_exact() -> None:
    prior = measure_prior("ipd", make_bot("ipd", "tit-for-tat"), make_protocol("ipd"), 8)
    for key in ("vs bot:random", "vs bot:alternator", "all probes", "self-play"):
        row = prior[key]
        assert row["p_coop_first"]["value"] == 1.0 and row["p_coop_after_c"]["value"] == 1.0
    assert prior["all probes"]["p_coop_after_d"]["value"] == 0.0
    assert prior["self-play"]["p_coop_after_d"]["n"] == 0  # never defected on in self-play


def test_ipd_prior_of_the_forgiving_persona_is_its_probabilities() -> None:
    prior = measure_prior("ipd", make_bot("ipd", "forgiving"), make_protocol("ipd"), 100)
    row = prior["all probes"]
    for key, p in {"p_coop_first": 0.95, "p_coop_after_c": 0.95, "p_coop_after_d": 0.6}.items():
        assert abs(row[key]["value"] - p) <= max(row[key]["ci95"], 0.02), key


def test_trust_split_prior_of_honest_and_tit_for_tat() -> None:
    protocol = make_protocol("trust-split")
    model = make_bot("trust-split", "honest")
    model.name = "honest-model"  # a probe is honest too; names must differ
    honest = measure_prior("trust-split", model, protocol, 8)
    for key in ("honesty", "follows_hands", "concede_otherwise", "concede_after_cheated"):
        assert honest["all probes"][key]["value"] == 1.0, key
    assert honest["vs bot:honest"]["claim_upper"]["value"] == 10.0
    assert honest["vs bot:honest"]["claim_lower"]["value"] == 0.0
    tft = measure_prior("trust-split", make_bot("trust-split", "tit-for-tat"), protocol, 8)
    assert tft["vs bot:greedy"]["concede_after_cheated"]["value"] == 0.0  # it retaliates
    assert tft["vs bot:greedy"]["concede_after_cheated"]["n"] > 0
    assert tft["vs bot:honest"]["concede_otherwise"]["value"] == 1.0


def test_prior_command_prints_and_stores_the_numbers_with_the_model(tmp_path, capsys) -> None:
    assert main(["prior", "tiny-test", "--game", "ipd", "--games", "2", "--json", str(tmp_path / "p.json")]) == 0
    printed = capsys.readouterr().out
    assert "p_coop_after_d" in printed and "persona target" in printed
    stored = stored_prior_path("tiny-test", "ipd")
    assert stored is not None and stored.is_file()
    data = json.loads(stored.read_text())
    assert data == json.loads((tmp_path / "p.json").read_text())
    assert data["target"]["p_coop_after_d"] == 0.6
    assert set(data["measured"]) == {"vs bot:random", "vs bot:alternator", "self-play", "all probes"}
