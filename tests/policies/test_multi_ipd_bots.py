"""N-player IPD bots: pinned outcomes of scripted match-ups (through the real runner), the IPD
bots' play at two players, the stochastic persona's product distribution."""

from __future__ import annotations

import itertools
import math

import pytest

from detente.games import make_config, make_game
from detente.policies.bots import bot_names, make_bot
from detente.protocol import make_protocol
from detente.rollout.runner import Match, play


def record_of(bots: tuple[str, ...], seed: int = 0, rounds: int = 10):
    config = make_config("multi-ipd", {"players": len(bots), "rounds": rounds})
    game = make_game("multi-ipd", config, seed)
    policies = tuple(make_bot("multi-ipd", b) for b in bots)
    (record,) = play(
        [Match(game, policies, "g")], make_protocol("multi-ipd", config=config), seed=seed
    )
    return record


def moves(bots: tuple[str, ...], seed: int = 0, rounds: int = 10) -> list[list[str]]:
    return [info["moves"] for info in record_of(bots, seed, rounds).infos]


def test_canonical_names():
    assert set(bot_names("multi-ipd")) == set(bot_names("ipd")) | {"group-tit-for-tat"}


def test_tit_for_tat_pair_against_a_defector_by_hand():
    """Round 1: the TFTs cooperate with everyone, the defector defects: Alice and Bob get 3 from
    each other and 0 from Carol, Carol 5 + 5. Then each TFT defects toward Carol only: 3 + 1
    each, Carol 1 + 1."""
    record = record_of(("tit-for-tat", "tit-for-tat", "always-defect"), rounds=3)
    assert [info["moves"] for info in record.infos] == [["CC", "CC", "DD"]] + [
        ["CD", "CD", "DD"]
    ] * 2
    assert record.rewards == [(3, 3, 10), (4, 4, 2), (4, 4, 2)]


@pytest.mark.parametrize(
    ("bots", "expected"),
    [
        # Group TFT punishes both co-players for Carol's defection, so Alice's TFT retaliates
        # toward Bob too, and the two echo each other's defection from then on.
        (
            ("tit-for-tat", "group-tit-for-tat", "always-defect"),
            [["CC", "CC", "DD"], ["CD", "DD", "DD"], ["DD", "DD", "DD"], ["DD", "DD", "DD"]],
        ),
        # Grim toward the alternator only: Carol's defection in round 2 ends it, Bob stays
        # friends with Alice.
        (
            ("grim", "always-cooperate", "alternator"),
            [["CC", "CC", "CC"], ["CC", "CC", "DD"], ["CD", "CC", "CC"], ["CD", "CC", "DD"]],
        ),
        # WSLS toward each: against the defector it alternates C, D; with the cooperator it stays.
        (
            ("wsls", "always-cooperate", "always-defect"),
            [["CC", "CC", "DD"], ["CD", "CC", "DD"], ["CC", "CC", "DD"], ["CD", "CC", "DD"]],
        ),
    ],
)
def test_pinned_matchups(bots, expected):
    assert moves(bots, rounds=4) == expected


def test_group_tit_for_tat_forgives_once_everyone_cooperates():
    seq = moves(("group-tit-for-tat", "alternator", "always-cooperate"), rounds=4)
    assert [m[0] for m in seq] == ["CC", "CC", "DD", "CC"]


@pytest.mark.parametrize(("a", "b"), list(itertools.product(sorted(bot_names("ipd")), repeat=2)))
def test_two_players_play_as_the_ipd_bots(a, b):
    """Each pairwise bot at N = 2 is its IPD bot: same moves and rewards, stochastic ones too."""
    for seed in (0, 1):
        game = make_game("ipd", None, seed)
        policies = (make_bot("ipd", a), make_bot("ipd", b))
        (ipd,) = play([Match(game, policies, "g")], make_protocol("ipd"), seed=seed)
        multi = record_of((a, b), seed)
        assert [i["moves"] for i in multi.infos] == [i["moves"] for i in ipd.infos]
        assert multi.rewards == ipd.rewards


def test_forgiving_reports_the_product_of_its_pairwise_distributions():
    """Toward each co-player: P(C) 0.95 first and after that co-player cooperated toward me,
    0.6 after it defected; the reply distribution is over the joint move."""
    p_c = {"first": 0.95, "C": 0.95, "D": 0.6}
    for seed in range(5):
        record = record_of(("forgiving", "random", "alternator"), seed, rounds=5)
        for t, turn in enumerate(record.seats[0].turns):
            if t == 0:
                p_bob = p_carol = p_c["first"]
            else:
                bob_row, carol_row = record.infos[t - 1]["moves"][1:]
                p_bob, p_carol = p_c[bob_row[0]], p_c[carol_row[0]]  # their moves toward Alice
            expected = {
                f"Bob: {x}, Carol: {y}": (p_bob if x == "<A>" else 1 - p_bob)
                * (p_carol if y == "<A>" else 1 - p_carol)
                for x in ("<A>", "<B>")
                for y in ("<A>", "<B>")
            }
            assert turn.distribution == pytest.approx(expected)
            assert math.isclose(sum(turn.distribution.values()), 1.0)
            assert turn.reply in turn.distribution
    assert (
        make_bot("multi-ipd", "tit-for-tat").move_probabilities(
            make_game("multi-ipd", None, 0).events(0), 0
        )
        is None
    )


def test_forgiving_draws_each_co_player_independently():
    first = [
        turn.reply
        for s in range(200)
        for turn in record_of(("forgiving",) * 3, s, 1).seats[0].turns
    ]
    defect_both = first.count("Bob: <B>, Carol: <B>") / len(first)
    assert first.count("Bob: <A>, Carol: <A>") / len(first) > 0.85 and defect_both < 0.02


def test_every_bot_gives_valid_replies_in_every_seat_at_four_players():
    names = bot_names("multi-ipd")
    for k, bots in enumerate(itertools.combinations(names, 4)):
        record = record_of(bots, seed=k, rounds=3)
        turns = [t for seat in record.seats for t in seat.turns]
        assert turns and not any(t.invalid_attempts for t in turns)
