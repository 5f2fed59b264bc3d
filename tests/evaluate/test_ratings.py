"""openskill ratings from face-off games."""

from __future__ import annotations

import numpy as np
import pytest

from detente.evaluate.ratings import per_iteration, plot_ratings, rate_games, snapshot_specs
from detente.rollout.records import GameRecord, SeatRecord


def record(a: str, b: str, ra: float, rb: float) -> GameRecord:
    return GameRecord("g", "ipd", 0, 0, 1, [(ra, rb)], [{}],
                      (SeatRecord(0, a, "rules"), SeatRecord(1, b, "rules")))


def test_the_agent_that_out_scores_rates_higher_and_self_play_is_not_rated():
    games = [record("a", "b", 5, 0), record("b", "a", 1, 3), record("a", "a", 3, 3),
             record("b", "c", 2, 2)] * 5
    ratings = {r.agent: r for r in rate_games(games, seed=0)}
    assert ratings["a"].ordinal > ratings["b"].ordinal
    assert (ratings["a"].games, ratings["a"].wins, ratings["a"].draws) == (10, 10, 0)
    assert (ratings["c"].games, ratings["c"].draws) == (5, 5)
    assert ratings["c"].mu == pytest.approx(25.0, abs=3)  # draws only with a loser


def test_ratings_match_openskill_played_by_hand():
    from openskill.models import PlackettLuce

    games = [record("x", "y", 3, 1), record("y", "x", 4, 0), record("x", "y", 2, 2)]
    model = PlackettLuce()
    x, y = model.rating(name="x"), model.rating(name="y")
    for g in (games[i] for i in np.random.default_rng(7).permutation(3)):
        a, b = g.seats[0].agent, g.seats[1].agent
        pair = {"x": x, "y": y}
        [[ra], [rb]] = model.rate([[pair[a]], [pair[b]]], scores=list(g.rewards[0]))
        pair[a], pair[b] = ra, rb
        x, y = pair["x"], pair["y"]
    ratings = {r.agent: r for r in rate_games(games, seed=7)}
    assert ratings["x"].mu == pytest.approx(x.mu) and ratings["y"].sigma == pytest.approx(y.sigma)


def test_snapshots_per_iteration(tmp_path):
    for name in ("pool/pool-000010", "pool/pool-000020", "checkpoints/iter-000019/adapter"):
        (tmp_path / name).mkdir(parents=True)
    specs = snapshot_specs(tmp_path)
    assert specs == {10: f"run:{tmp_path}@10", 19: f"run:{tmp_path}@19", 20: f"run:{tmp_path}@20"}
    games = [record(specs[10], "bot", 1, 3), record(specs[20], "bot", 3, 1)]
    ratings = rate_games(games)
    points = per_iteration(ratings, specs)
    assert [p["iteration"] for p in points] == [10, 20]
    assert points[1]["ordinal"] > points[0]["ordinal"]
    path = plot_ratings({"run": points}, [r for r in ratings if r.agent == "bot"],
                        tmp_path / "r.png", "ratings")
    assert path.stat().st_size > 1000
