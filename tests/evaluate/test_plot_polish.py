"""Report plots (issue 17, point 13): readable titles, probabilities on a fixed [0, 1] axis."""

from __future__ import annotations

from unittest import mock

import matplotlib.axes

from detente.evaluate.plots import plot_curves


def test_titles_and_unit_axes(tmp_path):
    lines = [{"iteration": i, "coop_rate": 0.4 + 0.01 * i, "reward": 2.0 + i} for i in range(3)]
    with mock.patch.object(matplotlib.axes.Axes, "set_title", autospec=True) as title, \
         mock.patch.object(matplotlib.axes.Axes, "set_ylim", autospec=True) as ylim:  # fmt: skip
        plot_curves({"run": lines}, "coop_rate", tmp_path / "c.png")
        assert title.call_args.args[1] == "cooperation rate"
        assert any(c.args[1:] == (-0.02, 1.02) for c in ylim.call_args_list)
        ylim.reset_mock()
        plot_curves({"run": lines}, "reward", tmp_path / "r.png")
        assert title.call_args.args[1] == "reward per round"
        assert not any(c.args[1:] == (-0.02, 1.02) for c in ylim.call_args_list)
