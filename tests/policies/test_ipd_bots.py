"""IPD bots: pinned outcomes of scripted matchups (played through the real runner)."""

from __future__ import annotations

import pytest

from detente.games import make_game
from detente.policies.bots import bot_names, make_bot
from detente.protocol import make_protocol
from detente.rollout.runner import Match, play


def moves(a: str, b: str, seed: int = 0) -> list[str]:
    game = make_game("ipd", None, seed)
    (record,) = play([Match(game, (make_bot("ipd", a), make_bot("ipd", b)), "g")], make_protocol("ipd"))
    return ["".join(info["moves"]) for info in record.infos]


def test_canonical_names():
    assert set(bot_names("ipd")) == {
        "always-cooperate", "always-defect", "tit-for-tat", "grim", "wsls", "random", "alternator",
        "forgiving",
    }


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("tit-for-tat", "always-defect", ["CD"] + ["DD"] * 9),
        ("tit-for-tat", "alternator", ["CC", "CD", "DC", "CD", "DC", "CD", "DC", "CD", "DC", "CD"]),
        ("grim", "alternator", ["CC", "CD"] + ["DC", "DD"] * 4),
        ("wsls", "always-defect", ["CD", "DD"] * 5),
        ("wsls", "tit-for-tat", ["CC"] * 10),
        ("always-cooperate", "alternator", ["CC", "CD"] * 5),
    ],
)
def test_pinned_matchups(a, b, expected):
    assert moves(a, b) == expected


def test_random_bot_is_seeded_and_balanced():
    first = moves("random", "always-cooperate", seed=1)
    assert first == moves("random", "always-cooperate", seed=1)
    sample = "".join(m[0] for s in range(60) for m in moves("random", "always-cooperate", seed=s))
    assert 0.4 < sample.count("C") / len(sample) < 0.6


def test_unknown_bot_is_a_clear_error():
    with pytest.raises(ValueError, match="tit-for-tat"):
        make_bot("ipd", "tit-for-two-tats")


def test_forgiving_draws_from_its_stated_probabilities_and_reports_them():
    """P(C) 0.95 first and after C, 0.6 after D; each move's reply carries the distribution."""
    from detente.games.ipd import Move

    bot = make_bot("ipd", "forgiving")
    protocol = make_protocol("ipd")
    counts = {"first": [], "after_c": [], "after_d": []}
    for seed in range(300):
        game = make_game("ipd", None, seed)
        (record,) = play([Match(game, (bot, make_bot("ipd", "random")), "g")], protocol, seed=seed)
        history = [info["moves"] for info in record.infos]
        for t, pair in enumerate(history):
            key = "first" if t == 0 else ("after_c" if history[t - 1][1] == "C" else "after_d")
            counts[key].append(pair[0] == "C")
            expected = {"first": 0.95, "after_c": 0.95, "after_d": 0.6}[key]
            turn = record.seats[0].turns[t]
            assert turn.distribution == pytest.approx({"<A>": expected, "<B>": 1 - expected})
    for key, p in {"first": 0.95, "after_c": 0.95, "after_d": 0.6}.items():
        n = len(counts[key])
        assert abs(sum(counts[key]) / n - p) < 3 * (p * (1 - p) / n) ** 0.5, key
    assert make_bot("ipd", "tit-for-tat").move_probabilities([], 0) is None
    assert bot.move_probabilities([], 0) == {Move.COOPERATE: 0.95, Move.DEFECT: pytest.approx(0.05)}
