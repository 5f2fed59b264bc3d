"""N-player IPD rules: rewards against a brute-force pairwise loop, the IPD at two players,
metadata, legality, what each seat observes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pydantic import ValidationError

from detente.games import make_config, make_game
from detente.games.base import IllegalAction
from detente.games.ipd import Move
from detente.games.multi_ipd import Addressed, RoundEnd, RoundStart

C, D = Move.COOPERATE, Move.DEFECT
PAYOFF = {("C", "C"): 3, ("C", "D"): 0, ("D", "C"): 5, ("D", "D"): 1}  # own, other's → own


def reference_rewards(moves: list[str]) -> list[float]:
    """``moves[i][k]``: seat i's move toward its k-th co-player (seats other than i, ascending);
    every unordered pair plays the 2-player table once."""
    n = len(moves)

    def toward(i: int, j: int) -> str:
        return moves[i][[p for p in range(n) if p != i].index(j)]

    rewards = [0.0] * n
    for i in range(n):
        for j in range(i + 1, n):
            rewards[i] += PAYOFF[toward(i, j), toward(j, i)]
            rewards[j] += PAYOFF[toward(j, i), toward(i, j)]
    return rewards


def as_moves(text: str) -> tuple[Move, ...]:
    return tuple(Move(c) for c in text)


def play_round(n: int, moves: list[str], seed: int = 0):
    game = make_game("multi-ipd", make_config("multi-ipd", {"players": n}), seed)
    game.act({p: as_moves(m) for p, m in enumerate(moves)})
    return game


def test_a_round_by_hand():
    """Alice C→Bob C→Carol; Bob C→Alice D→Carol; Carol D→Alice D→Bob. Alice: 3 (with Bob)
    + 0 (with Carol); Bob: 3 + 1; Carol: 5 + 1."""
    game = play_round(3, ["CC", "CD", "DD"])
    assert game.rewards == [(3, 4, 6)]
    assert game.infos == [{"moves": ["CC", "CD", "DD"], "cooperated": [1.0, 0.5, 0.0]}]


@pytest.mark.parametrize("n", [3, 4])
def test_rewards_match_the_pairwise_loop_for_every_joint_move(n):
    rng = np.random.default_rng(n)
    rows = ["".join(r) for r in itertools.product("CD", repeat=n - 1)]
    joint = list(itertools.product(rows, repeat=n))
    if len(joint) > 512:  # 4096 joint moves at n = 4: a sample
        joint = [joint[i] for i in rng.choice(len(joint), 512, replace=False)]
    for moves in joint:
        assert list(play_round(n, list(moves)).rewards[0]) == reference_rewards(list(moves))


def test_configurable_payoffs_apply_to_every_pair():
    config = make_config("multi-ipd", {"reward": 4, "sucker": -1, "temptation": 6, "punishment": 0})
    game = make_game("multi-ipd", config, 0)
    game.act({0: (C, D), 1: (D, C), 2: (C, C)})
    # Alice: vs Bob (C, D) -1, vs Carol (D, C) 6; Bob: vs Alice (D, C) 6, vs Carol (C, C) 4;
    # Carol: vs Alice (C, D) -1, vs Bob (C, C) 4.
    assert game.rewards == [(5, 10, 3)]


@pytest.mark.parametrize("continuation", [None, 0.8])
@pytest.mark.parametrize("seed", range(6))
def test_two_players_is_the_ipd(seed, continuation):
    """Same horizon draw, rewards and info moves round by round for the same move sequence."""
    options = {"continuation": continuation}
    ipd = make_game("ipd", make_config("ipd", options), seed)
    multi = make_game("multi-ipd", make_config("multi-ipd", {**options, "players": 2}), seed)
    assert multi.num_rounds == ipd.num_rounds and multi.num_players == 2
    rng = np.random.default_rng(seed)
    while not ipd.done:
        a, b = (C if x else D for x in rng.random(2) < 0.5)
        ipd.act({0: a, 1: b})
        multi.act({0: (a,), 1: (b,)})
        assert multi.rewards[-1] == ipd.rewards[-1]
        assert multi.infos[-1]["moves"] == ipd.infos[-1]["moves"]
    assert multi.done and multi.total_rewards() == ipd.total_rewards()


def test_metadata_follows_the_config():
    info = make_game("multi-ipd", None, 0).info
    assert (info.players, info.simultaneous, info.messages) == (3, True, False)
    assert (info.reward_bounds, info.max_rounds) == ((0, 10), 10)
    assert (info.cooperation, info.defection) == (6, 2)  # R and P from each of the two pairs
    four = make_game("multi-ipd", make_config("multi-ipd", {"players": 4, "sucker": -1}), 0)
    assert four.num_players == 4 and four.info.reward_bounds == (-3, 15)
    assert four.phase.players == (0, 1, 2, 3)
    random = make_config("multi-ipd", {"continuation": 0.9, "max_rounds": 25})
    assert make_game("multi-ipd", random, 0).info.max_rounds == 25


@pytest.mark.parametrize(
    "options", [{"players": 1}, {"players": 9}, {"temptation": 2}, {"seats": 3}]
)
def test_bad_options_are_errors(options):
    with pytest.raises(ValidationError):
        make_config("multi-ipd", options)


@pytest.mark.parametrize(
    "move",
    [
        (C,),
        (C, D, D),
        "CD",
        ("C", "D"),
        [C, D],
        Addressed((C, D), (0, 2)),
        Addressed((C, D), (2, 1)),
    ],
)
def test_illegal_moves(move):
    game = make_game("multi-ipd", None, 0)
    with pytest.raises(IllegalAction):
        game.check_move(0, move)
    with pytest.raises(IllegalAction):
        game.act({0: move, 1: (C, C), 2: (C, C)})
    assert game.round == 0


def test_an_addressed_move_must_name_the_movers_co_players():
    game = make_game("multi-ipd", None, 0)
    game.check_move(1, Addressed((C, D), (0, 2)))
    with pytest.raises(IllegalAction, match="Alice, Carol"):
        game.check_move(1, Addressed((C, D), (1, 2)))


def test_each_seat_sees_the_whole_round_from_its_side():
    game = play_round(3, ["CD", "DC", "CD"])
    ends = [[e for e in game.events(p) if isinstance(e, RoundEnd)][0] for p in range(3)]
    assert all(e.moves == ends[0].moves and e.rewards == tuple(game.rewards[0]) for e in ends)
    carol = ends[2]
    # Carol moved C toward Alice, D toward Bob; Alice moved D toward Carol, Bob C toward Carol.
    assert (carol.co_players, carol.own_moves, carol.other_moves) == ((0, 1), (C, D), (D, C))
    assert carol.own_reward == 0 + 5 and carol.pair_rewards[2] == (0, 5)
    starts = [e for e in game.events(1) if isinstance(e, RoundStart)]
    assert [s.co_players for s in starts] == [(0, 2), (0, 2)]


def test_events_hold_plain_moves():
    """A reply's names are checked, then dropped: the matrix holds plain tuples."""
    game = make_game("multi-ipd", None, 3)
    game.act({0: Addressed((C, C), (1, 2)), 1: (D, C), 2: (C, D)})
    end = [e for e in game.events(0) if isinstance(e, RoundEnd)][0]
    assert type(end.moves[0]) is tuple and end.moves[0] == (C, C)


def test_ten_rounds_by_default():
    game = make_game("multi-ipd", None, 5)
    while not game.done:
        game.act({p: (D, D) for p in range(3)})
    assert game.round == 10 and game.total_rewards() == (20, 20, 20)


def test_presets_carry_the_ipds_paper_settings_at_every_scale():
    from detente.config import load_config

    gpu = load_config("multi-ipd-adalign")
    assert gpu.game.name == "multi-ipd" and gpu.game.game_config().players == 3
    assert (gpu.train.games_per_iteration, gpu.train.gamma, gpu.train.beta) == (128, 0.9, 0.5)
    assert (gpu.train.entropy_coef, gpu.invalid.free_retries) == (0.01, 0)
    assert "group-tit-for-tat" in gpu.eval.bots
    for method in ("naive", "sum", "adalign"):
        for scale in ("tiny", "smollm2"):
            config = load_config(f"multi-ipd-{method}-{scale}")
            assert config.game.name == "multi-ipd" and config.invalid.constrain_moves
