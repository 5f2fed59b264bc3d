"""From records to credits and token sequences, checked against literal loops of SPEC §2."""

from __future__ import annotations

import numpy as np
import pytest

from detente.games.base import Kind
from detente.learn.batch import seat_credits, token_sequences
from detente.learn.credit import CreditMethod, CreditOptions
from detente.rollout.records import GameRecord, SeatRecord, Turn

SCALE = 5.0  # the IPD's reward scale


def make_record(index: int, group: int, rewards: np.ndarray, learners=(True, True)) -> GameRecord:
    seats = tuple(
        SeatRecord(p, "live", "rules", learner=learners[p], turns=[
            Turn(t, Kind.MOVE, "move?", "<A>", "C", prompt_ids=[7, 8], token_ids=[1 + p, 5],
                 logprobs=[-0.1, -0.2])
            for t in range(len(rewards))
        ])
        for p in (0, 1)
    )
    return GameRecord(f"g{index}", "ipd", index, group, len(rewards),
                      [tuple(r) for r in rewards.tolist()], [{}] * len(rewards), seats)


def brute_force(records, settings, row_player):
    """Literal loops: returns, leave-one-out within (group, seat) (K = 1: within the seat
    position over the batch), credit per SPEC §2."""
    def returns(rec, p):
        r = [x[p] / SCALE for x in rec.rewards]
        return [sum(settings.gamma ** (s - t) * r[s] for s in range(t, len(r))) for t in range(len(r))]

    rows = [(g, p) for g, rec in enumerate(records) for p in (0, 1) if rec.seats[p].learner]
    keys = {(g, p): (records[g].group, p) for g, p in rows}
    sizes = {}
    for k in keys.values():
        sizes[k] = sizes.get(k, 0) + 1
    pooled = all(v == 1 for v in sizes.values())
    out = {}
    for g, p in rows:
        T = records[g].num_rounds
        peers = [(h, q) for h, q in rows if (h, q) != (g, p) and q == p
                 and (pooled or keys[(h, q)] == keys[(g, p)])]
        adv = {}
        for who, seat in (("own", p), ("other", 1 - p)):
            G = returns(records[g], seat)
            adv[who] = [G[t] - np.mean([returns(records[h], q if who == "own" else 1 - q)[t] for h, q in peers])
                        for t in range(T)]
        own, other = adv["own"], adv["other"]
        credit = []
        for t in range(T):
            if settings.method == CreditMethod.NAIVE:
                credit.append(own[t])
            elif settings.method == CreditMethod.SUM:
                credit.append(own[t] + other[t])
            else:
                jit, lead = settings.include_current, settings.leading_gamma
                lead = not jit if lead is None else lead
                w = (settings.gamma_a if lead else 1.0) * sum(
                    settings.gamma_a ** (t - k) * own[k] for k in range(t + 1 if jit else t)
                )
                credit.append(own[t] + settings.beta * other[t] * w)
        out[(g, p)] = credit
    return out


@pytest.mark.parametrize("method", list(CreditMethod))
@pytest.mark.parametrize(("games", "group_size"), [(6, 1), (8, 4)])
def test_seat_credits_match_brute_force(method, games, group_size):
    rng = np.random.default_rng(0)
    records = [make_record(i, i // group_size, rng.integers(0, 6, size=(5, 2)).astype(float))
               for i in range(games)]
    settings = CreditOptions(method=method, gamma=0.9, beta=0.7, gamma_a=0.8)
    expected = brute_force(records, settings, None)
    for sc in seat_credits(records, settings, SCALE):
        assert sc.credits == pytest.approx(expected[(sc.game_index, sc.player)], abs=1e-12)


@pytest.mark.parametrize("include_current", [False, True])
@pytest.mark.parametrize("leading_gamma", [None, True, False])
def test_adalign_leading_gamma_reaches_the_credits(include_current, leading_gamma):
    rng = np.random.default_rng(4)
    records = [make_record(i, i // 2, rng.integers(0, 6, size=(4, 2)).astype(float))
               for i in range(6)]
    settings = CreditOptions(
        method=CreditMethod.ADALIGN, gamma=0.9, beta=0.7, gamma_a=0.8,
        include_current=include_current, leading_gamma=leading_gamma,
    )
    expected = brute_force(records, settings, None)
    for sc in seat_credits(records, settings, SCALE):
        assert sc.credits == pytest.approx(expected[(sc.game_index, sc.player)], abs=1e-12)


def test_only_learner_seats_get_credit_and_tokens():
    rng = np.random.default_rng(1)
    records = [make_record(i, i, rng.integers(0, 6, size=(3, 2)).astype(float),
                           learners=(i % 2 == 0, i % 2 == 1)) for i in range(4)]
    settings = CreditOptions(method=CreditMethod.ADALIGN, gamma=0.9, beta=0.5, gamma_a=0.9)
    credits = seat_credits(records, settings, SCALE)
    assert [(c.game_index, c.player) for c in credits] == [(0, 0), (1, 1), (2, 0), (3, 1)]
    sequences = token_sequences(records, credits)
    seq = sequences[1]  # game 1, Bob
    assert seq.tokens == [7, 8, 2, 5] * 3
    assert seq.action == [0, 0, 1, 1] * 3
    assert seq.credit[2:4] == [credits[1].credits[0]] * 2 and seq.credit[6] == credits[1].credits[1]
    assert seq.sampler_logp[:4] == [0.0, 0.0, -0.1, -0.2]


@pytest.mark.parametrize("opponent_pool", [False, True])
def test_baseline_never_holds_the_co_players_return_of_the_same_game(opponent_pool):
    """K = 1 (IPD): changing only Bob's rewards (game 0: Bob learns in self-play; game 1: Bob
    learns with the opponent pool, whose learner seat alternates between games) leaves every
    Alice naive credit as it was."""
    rng = np.random.default_rng(2)
    rewards = rng.integers(0, 6, size=(8, 4, 2)).astype(float)

    def alice_credits(rewards):
        records = [
            make_record(i, i, rewards[i],
                        learners=(True, True) if not opponent_pool else (i % 2 == 0, i % 2 == 1))
            for i in range(len(rewards))
        ]
        settings = CreditOptions(method=CreditMethod.NAIVE, gamma=0.9)
        return {c.game_index: c.credits for c in seat_credits(records, settings, SCALE) if c.player == 0}

    before = alice_credits(rewards)
    changed = rewards.copy()
    changed[0:2, :, 1] += [5.0, -3.0, 2.0, 4.0]
    after = alice_credits(changed)
    assert before.keys() == after.keys() and len(before) == (4 if opponent_pool else 8)
    for game in before:
        np.testing.assert_array_equal(after[game], before[game])


@pytest.mark.parametrize("ignore_groups", [False, True])
def test_ignore_groups_pools_per_seat_position(ignore_groups):
    rng = np.random.default_rng(3)
    records = [make_record(i, i // 4, rng.integers(0, 6, size=(3, 2)).astype(float))
               for i in range(8)]
    settings = CreditOptions(method=CreditMethod.NAIVE, gamma=0.9, ignore_groups=ignore_groups)
    credits = {(c.game_index, c.player): c.credits for c in seat_credits(records, settings, SCALE)}
    for p in (0, 1):
        peers = [g for g in range(8) if ignore_groups or g // 4 == 0]
        returns = {
            g: [sum(0.9 ** (s - t) * records[g].rewards[s][p] / 5 for s in range(t, 3))
                for t in range(3)]
            for g in peers
        }
        expected = [returns[0][t] - np.mean([returns[g][t] for g in peers if g]) for t in range(3)]
        assert credits[(0, p)] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("weights", [(1.0, 0.0), (0.0, -1.0), (1.0, -1.0), (0.5, 2.0)])
@pytest.mark.parametrize("learners", [(True, True), (True, False)])
def test_reward_weights_mix_the_learners_reward_before_the_returns(weights, learners):
    """Literal loop: r̃ = w_self · r_own + w_other · r_other, returns, leave-one-out per seat."""
    rng = np.random.default_rng(3)
    records = [make_record(i, i // 2, rng.integers(0, 6, size=(4, 2)).astype(float), learners)
               for i in range(6)]
    settings = CreditOptions(method=CreditMethod.NAIVE, gamma=0.9, reward_weights=weights)

    def mixed_returns(rec, p):
        r = [(weights[0] * x[p] + weights[1] * x[1 - p]) / 5.0 for x in rec.rewards]
        return [sum(0.9 ** (s - t) * r[s] for s in range(t, len(r))) for t in range(len(r))]

    rows = [(g, p) for g, rec in enumerate(records) for p in (0, 1) if rec.seats[p].learner]
    credits = {(sc.game_index, sc.player): sc.credits for sc in seat_credits(records, settings, SCALE)}
    assert set(credits) == set(rows)
    for g, p in rows:
        peers = [h for h, q in rows if q == p and h != g and records[h].group == records[g].group]
        own = mixed_returns(records[g], p)
        expected = [own[t] - np.mean([mixed_returns(records[h], p)[t] for h in peers])
                    for t in range(4)]
        assert credits[(g, p)] == pytest.approx(expected, abs=1e-12)


def test_naive_on_the_sum_of_rewards_is_the_sum_method_in_self_play():
    rng = np.random.default_rng(4)
    records = [make_record(i, i // 4, rng.integers(0, 6, size=(5, 2)).astype(float))
               for i in range(8)]
    mixed = CreditOptions(method=CreditMethod.NAIVE, gamma=0.9, reward_weights=(1.0, 1.0))
    summed = CreditOptions(method=CreditMethod.SUM, gamma=0.9)
    for a, b in zip(seat_credits(records, mixed, SCALE), seat_credits(records, summed, SCALE), strict=True):
        assert a.credits == pytest.approx(b.credits, abs=1e-12)


def make_n_player_record(index: int, group: int, rewards: np.ndarray) -> GameRecord:
    """A game of ``rewards.shape[1]`` seats, every seat a learner."""
    seats = tuple(
        SeatRecord(p, "live", "rules", learner=True, turns=[
            Turn(t, Kind.MOVE, "move?", "<A>", "C", prompt_ids=[7], token_ids=[1], logprobs=[-0.1])
            for t in range(len(rewards))
        ])
        for p in range(rewards.shape[1])
    )
    return GameRecord(f"g{index}", "public-goods", index, group, len(rewards),
                      [tuple(r) for r in rewards.tolist()], [{}] * len(rewards), seats)


def brute_force_n(records, options, mixed_weights=(1.0, 0.0)):
    """Literal loops for N seats: each seat's leave-one-out advantage among the same seat
    position of its seed group (K = 1: of the batch), the co-players' advantages summed (or
    averaged) per learner, then the credit formula."""
    n = records[0].num_players
    pooled = all(sum(r.group == rec.group for r in records) == 1 for rec in records)

    def returns(rec, reward_of_round):
        r = [reward_of_round(x) / SCALE for x in rec.rewards]
        return [sum(options.gamma ** (s - t) * r[s] for s in range(t, len(r))) for t in range(len(r))]

    def combine(values):
        total = [sum(v[t] for v in values) for t in range(len(values[0]))]
        return total if options.co_players == "sum" else [x / len(values) for x in total]

    def reward_fn(p):
        w_self, w_other = mixed_weights
        return lambda x: w_self * x[p] + w_other * combine([[x[j]] for j in range(n) if j != p])[0]

    def advantage(g, p, reward_of):
        peers = [h for h in range(len(records)) if h != g and (pooled or records[h].group == records[g].group)]
        mine = returns(records[g], reward_of(p))
        return [mine[t] - np.mean([returns(records[h], reward_of(p))[t] for h in peers])
                for t in range(records[g].num_rounds)]

    out = {}
    for g in range(len(records)):
        for p in range(n):
            own = advantage(g, p, reward_fn)
            other = combine([advantage(g, j, lambda q: (lambda x: x[q])) for j in range(n) if j != p])
            credit = []
            for t in range(len(own)):
                if options.method == CreditMethod.NAIVE:
                    credit.append(own[t])
                elif options.method == CreditMethod.SUM:
                    credit.append(own[t] + other[t])
                else:
                    w = options.gamma_a * sum(options.gamma_a ** (t - k) * own[k] for k in range(t))
                    credit.append(own[t] + options.beta * other[t] * w)
            out[(g, p)] = credit
    return out


@pytest.mark.parametrize("method", list(CreditMethod))
@pytest.mark.parametrize("co_players", ["sum", "mean"])
@pytest.mark.parametrize(("players", "games", "group_size"), [(3, 6, 1), (4, 8, 4)])
def test_n_player_credits_match_brute_force(method, co_players, players, games, group_size):
    """A^i + β W^i Σ_{j≠i} A^j (or the mean over co-players), each A by its seat position."""
    rng = np.random.default_rng(7)
    records = [make_n_player_record(i, i // group_size, rng.integers(0, 16, size=(5, players)).astype(float))
               for i in range(games)]
    options = CreditOptions(method=method, gamma=0.9, beta=0.7, gamma_a=0.8, co_players=co_players)
    expected = brute_force_n(records, options)
    credits = seat_credits(records, options, SCALE)
    assert len(credits) == games * players
    for sc in credits:
        assert sc.credits == pytest.approx(expected[(sc.game_index, sc.player)], abs=1e-12)


@pytest.mark.parametrize("co_players", ["sum", "mean"])
def test_n_player_reward_mixing_uses_the_co_players(co_players):
    """Spite with three players: r̃ = −Σ_{j≠i} r^j (or −mean) before the returns."""
    rng = np.random.default_rng(8)
    records = [make_n_player_record(i, i // 2, rng.integers(0, 16, size=(4, 3)).astype(float))
               for i in range(6)]
    options = CreditOptions(method=CreditMethod.NAIVE, gamma=0.9, reward_weights=(0.0, -1.0),
                            co_players=co_players)
    expected = brute_force_n(records, options, mixed_weights=(0.0, -1.0))
    for sc in seat_credits(records, options, SCALE):
        assert sc.credits == pytest.approx(expected[(sc.game_index, sc.player)], abs=1e-12)


def test_two_players_sum_and_mean_of_co_players_agree():
    rng = np.random.default_rng(9)
    records = [make_record(i, i // 2, rng.integers(0, 6, size=(4, 2)).astype(float)) for i in range(6)]
    by = {how: seat_credits(records, CreditOptions(method=CreditMethod.ADALIGN, co_players=how), SCALE)
          for how in ("sum", "mean")}
    for a, b in zip(by["sum"], by["mean"], strict=True):
        np.testing.assert_array_equal(a.credits, b.credits)
