"""Public goods bots: pinned outcomes of scripted match-ups (played through the real runner)."""

from __future__ import annotations

import pytest

from detente.games import make_config, make_game
from detente.games.public_goods import RoundEnd, RoundStart
from detente.policies.bots import bot_names, make_bot
from detente.policies.bots.public_goods import mean_rounded_half_up
from detente.protocol import Style, make_protocol
from detente.rollout.runner import Match, play

FREE, FULL, COND, GRIM = "free-rider", "full-contributor", "conditional", "grim"


def run(bots: tuple[str, ...], style: Style = Style.FULL, **options: object):
    game = make_game("public-goods", make_config("public-goods", options), 0)
    policies = tuple(make_bot("public-goods", b) for b in bots)
    (record,) = play([Match(game, policies, "g")], make_protocol("public-goods", style))
    return record


def gives(record) -> list[list[int]]:
    return [info["contributions"] for info in record.infos]


def totals(contributions: list[list[int]], r: float = 1.6, e: int = 10) -> list[float]:
    """Each seat's total, summed round by round from the payoff formula (written apart)."""
    n = len(contributions[0])
    return [sum(e - row[p] + r * sum(row) / n for row in contributions) for p in range(n)]


def test_canonical_names() -> None:
    assert bot_names("public-goods") == sorted([FREE, FULL, COND, GRIM])


def test_free_rider_among_full_contributors() -> None:
    """Every round (0, 10, 10, 10): 10 + 48/4 = 22 for the free rider, 12 for the others."""
    record = run((FREE, FULL, FULL, FULL))
    assert gives(record) == [[0, 10, 10, 10]] * 10
    assert [sum(r[p] for r in record.rewards) for p in range(4)] == pytest.approx(
        [220, 120, 120, 120]
    )


def test_conditional_cooperators_decay_towards_a_free_rider() -> None:
    """Round 1 all give 10; then each gives the rounded mean of the others' last round:
    (0+10+10)/3 = 6.7 → 7, (0+7+7)/3 = 4.7 → 5, 10/3 → 3, 6/3 = 2, 4/3 → 1, 2/3 → 1, ..."""
    record = run((FREE, COND, COND, COND))
    path = [10, 7, 5, 3, 2, 1, 1, 1, 1, 1]
    assert gives(record) == [[0, c, c, c] for c in path]
    assert record.rewards and [
        sum(r[p] for r in record.rewards) for p in range(4)
    ] == pytest.approx(totals(gives(record)))


def test_cooperators_sustain_full_giving() -> None:
    for bots in [(COND,) * 4, (GRIM,) * 4, (COND, GRIM, FULL, COND)]:
        record = run(bots)
        assert gives(record) == [[10] * 4] * 10
        assert [sum(r[p] for r in record.rewards) for p in range(4)] == pytest.approx([160] * 4)


def test_grim_triggers_once_and_forever() -> None:
    """Grim gives 10 in round 1, sees the free rider's 0, gives 0 from then on; the conditional
    cooperator follows the mean of the others' last round: (0+10+10)/3 → 7, then (0+0+10)/3 →
    3, then (0+0+10)/3 → 3 ..."""
    record = run((FREE, GRIM, COND, FULL))
    assert gives(record) == [[0, 10, 10, 10], [0, 0, 7, 10]] + [[0, 0, 3, 10]] * 8
    assert [sum(r[p] for r in record.rewards) for p in range(4)] == pytest.approx(
        totals(gives(record))
    )


def test_two_players_with_a_chat_announce_and_keep_their_word() -> None:
    record = run((GRIM, FREE), players=2, multiplier=1.5, messages_per_player=1, rounds=3)
    assert gives(record) == [[10, 0], [0, 0], [0, 0]]
    messages = [t.action for t in record.seats[0].turns if t.kind == "message"]
    assert messages == [
        "I will put in 10 coins.",
        "I will put in 0 coins.",
        "I will put in 0 coins.",
    ]


@pytest.mark.parametrize(
    ("values", "expected"),
    [([2, 3], 3), ([0, 5], 3), ([1, 2], 2), ([0, 1, 1], 1), ([0, 0, 1], 0), ([10, 10, 0], 7)],
)
def test_mean_rounds_halves_up(values, expected) -> None:
    assert mean_rounded_half_up(values) == expected


def test_grim_threshold_is_below_half_the_endowment() -> None:
    """A co-player giving 5 of 10 keeps grim giving; 4 triggers it."""
    grim = make_bot("public-goods", GRIM)
    start = RoundStart(1, 10, None)
    for lowest, expected in [(5, 10), (4, 0)]:
        end = RoundEnd(0, 10, (10, lowest, 10), 0.0, (0.0, 0.0, 0.0), 0.0)
        assert grim.decide([RoundStart(0, 10, None), end, start], 0, None) == expected


def test_compact_style_plays_the_same() -> None:
    assert gives(run((FREE, COND, COND, COND), Style.COMPACT)) == gives(
        run((FREE, COND, COND, COND))
    )
