"""Replicator dynamics on face-off matrices: the Jacobian, rest points, basins, the plot."""

from __future__ import annotations

import numpy as np
import pytest

from detente.evaluate.replicator import (
    basins,
    jacobian,
    plot_dynamics,
    replicator_velocity,
    rest_points,
    stability,
    trajectory,
)

# 10-round IPD: tit-for-tat and always-defect (mean reward per round of the row agent).
TFT_ALLD = [[3.0, 0.9], [1.4, 1.0]]
COOPERATION = [[1.0, 0.1], [0.0, 0.0]]


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    x = rng.dirichlet(np.ones(4))
    h = 1e-6
    numeric = np.stack([(replicator_velocity(a, x + h * e) - replicator_velocity(a, x - h * e))
                        / (2 * h) for e in np.eye(4)], axis=1)
    assert jacobian(a, x) == pytest.approx(numeric, abs=1e-6)


def test_trajectory_follows_the_equation():
    """nashpy's integration against small explicit Euler steps of dx/dt = x((Ax)_i − xᵀAx)."""
    a = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) + 2.0
    start = np.array([0.5, 0.3, 0.2])
    x = start.copy()
    for _ in range(20000):
        x = x + 1e-4 * replicator_velocity(a, x)
    _, shares = trajectory(a, start, t_max=2.0, steps=50)
    assert shares[-1] == pytest.approx(x, abs=1e-3)


def test_tit_for_tat_against_always_defect_is_bistable():
    points = {tuple(np.round(p.shares, 4)): p.stability for p in rest_points(TFT_ALLD)}
    assert points[(1.0, 0.0)] == "stable"
    assert points[(0.0, 1.0)] == "stable"
    # the interior point: 3x + 0.9(1 − x) = 1.4x + (1 − x)  ⇒  x = 1/17
    interior = [p for p in points if 0 < p[0] < 1]
    assert interior[0][0] == pytest.approx(1 / 17, abs=1e-4)
    assert points[interior[0]] == "unstable"
    dynamics = basins(["tft", "alld"], TFT_ALLD, COOPERATION, starts=300, seed=1)
    # uniform starts on the segment: the share of tft above 1/17
    assert dynamics.basin_of_cooperation == pytest.approx(16 / 17, abs=0.04)
    assert dynamics.basins[0].support == ["tft"]
    assert dynamics.uniform_end == pytest.approx([1.0, 0.0], abs=1e-3)


def test_rock_paper_scissors_centre_is_neutral():
    rps = [[0, -1, 1], [1, 0, -1], [-1, 1, 0]]
    assert stability(rps, [1 / 3] * 3) == "neutral"
    assert stability([[2, 0], [0, 1]], [1 / 3, 2 / 3]) == "unstable"


def test_basins_refuse_a_bad_matrix_and_plot(tmp_path):
    with pytest.raises(ValueError, match="finite 2x2"):
        basins(["a", "b"], [[1, float("nan")], [0, 1]])
    dynamics = basins(["tft", "alld", "x$"], [[3, 0.9, 2], [1.4, 1, 1], [2, 1, 2]], starts=20)
    assert sum(b.share_of_starts for b in dynamics.basins) == pytest.approx(1.0)
    assert dynamics.basin_of_cooperation is None
    path = plot_dynamics(dynamics, tmp_path / "r.png", "replicator $x$")
    assert path.stat().st_size > 1000


def test_pure_rest_points_of_a_degenerate_game_are_found():
    """Tit-for-tat, a copy of it and always-defect: support enumeration alone misses the pure
    tit-for-tat equilibrium (the copy earns the same against it); it is neutral, not stable."""
    a = [[3.0, 3.0, 0.9], [3.0, 3.0, 0.9], [1.4, 1.4, 1.0]]
    points = {tuple(np.round(p.shares, 6)): p.stability for p in rest_points(a)}
    assert points[(1.0, 0.0, 0.0)] == "neutral"
    assert points[(0.0, 0.0, 1.0)] == "stable"
