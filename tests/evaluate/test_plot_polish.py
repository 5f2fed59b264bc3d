"""Report plots (issue 17, point 13): readable titles, probabilities on a fixed [0, 1] axis,
the game's declared reference lines on reward plots, readable heatmap labels."""

from __future__ import annotations

from dataclasses import replace
from unittest import mock

import matplotlib.axes
import matplotlib.pyplot as plt
import pytest

from detente.evaluate.plots import (
    LABEL_WIDTH,
    curve_keys,
    heatmap_figure,
    plot_curves,
    reference_lines,
    short_labels,
)
from detente.games import game_type, make_config

LINES = [
    {"iteration": i, "coop_rate": 0.4 + 0.01 * i, "reward": 2.0 + 0.1 * i,
     "collective_reward": 4.0 + 0.2 * i, "contribution_rate": 0.5, "free_ride_rate": 0.1}
    for i in range(3)
]  # fmt: skip
REFERENCES = ("mutual cooperation", "mutual defection")


def info(game: str, **options):
    return game_type(game).describe(make_config(game, options))


def drawn(key: str, **kwargs) -> matplotlib.axes.Axes:
    """The axes ``plot_curves`` drew (the figure kept open for the test, closed after)."""
    with mock.patch("detente.evaluate.plots.plt.close"):
        plot_curves({"run": LINES}, key, kwargs.pop("path"), **kwargs)
    fig = plt.gcf()
    plt.close(fig)
    return fig.axes[0]


def references(ax: matplotlib.axes.Axes) -> dict[str, float]:
    """The horizontal reference lines of a plot, by label."""
    return {
        line.get_label(): float(line.get_ydata()[0])
        for line in ax.get_lines()
        if line.get_label() in (*REFERENCES, "target self-play")
    }


def test_titles_and_unit_axes(tmp_path):
    with mock.patch.object(matplotlib.axes.Axes, "set_title", autospec=True) as title, \
         mock.patch.object(matplotlib.axes.Axes, "set_ylim", autospec=True) as ylim:  # fmt: skip
        plot_curves({"run": LINES}, "coop_rate", tmp_path / "c.png")
        assert title.call_args.args[1] == "cooperation rate"
        assert any(c.args[1:] == (-0.02, 1.02) for c in ylim.call_args_list)
        ylim.reset_mock()
        plot_curves({"run": LINES}, "reward", tmp_path / "r.png")
        assert title.call_args.args[1] == "reward per round"
        assert not any(c.args[1:] == (-0.02, 1.02) for c in ylim.call_args_list)


def test_a_title_says_what_is_plotted_and_of_whom(tmp_path):
    ax = drawn("reward", path=tmp_path / "r.png", subject="ipd · adalign s0")
    assert ax.get_title() == "ipd · adalign s0: reward per round"
    ax = drawn("reward", path=tmp_path / "r.png", subject="ipd · seed 1", title="vs frozen sum")
    assert ax.get_title() == "ipd · seed 1: vs frozen sum"


def test_the_n_player_rates_are_plotted_on_a_unit_axis(tmp_path):
    assert {"contribution_rate", "free_ride_rate"} <= set(curve_keys(LINES))
    for key in ("contribution_rate", "free_ride_rate", "coop_rate"):
        ax = drawn(key, path=tmp_path / f"{key}.png")
        assert ax.get_ylim() == pytest.approx((-0.02, 1.02))
        assert "_" not in ax.get_title()  # a readable title, not the key


def test_reward_plots_carry_the_declared_reference_lines(tmp_path):
    ipd = info("ipd")
    ax = drawn("reward", path=tmp_path / "r.png", info=ipd)
    assert references(ax) == {"mutual cooperation": 3.0, "mutual defection": 1.0}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["run", *REFERENCES]
    # read from the declaration under the run's options, not from the game's name
    ax = drawn("reward", path=tmp_path / "r.png", info=info("ipd", reward=4.0, punishment=2.0))
    assert references(ax) == {"mutual cooperation": 4.0, "mutual defection": 2.0}
    made_up = replace(ipd, cooperation=7.5, defection=None)
    assert references(drawn("reward", path=tmp_path / "r.png", info=made_up)) == {
        "mutual cooperation": 7.5}  # fmt: skip
    # the collective reward sums the players' rewards: the lines are players × each one's
    goods = info("public-goods")
    ax = drawn("collective_reward", path=tmp_path / "c.png", info=goods)
    assert references(ax) == {
        "mutual cooperation": goods.players * goods.cooperation,
        "mutual defection": goods.players * goods.defection,
    }
    # none where the game declares none, and none on a plot that is not of rewards
    assert references(drawn("reward", path=tmp_path / "r.png", info=info("trust-split"))) == {}
    assert references(drawn("coop_rate", path=tmp_path / "c.png", info=ipd)) == {}
    assert references(drawn("reward", path=tmp_path / "r.png")) == {}
    assert reference_lines(info("commons")) == {"mutual cooperation": info("commons").cooperation}


def test_exploiter_plots_show_the_target_and_both_references(tmp_path):
    from detente.studies.exploiters import Exploitability, ExploiterRun, plot_exploiters

    curve = [{"iteration": i, "reward": 3.0 + i, "target": 3.0 - i} for i in range(3)]
    runs = [ExploiterRun("naive", 0, "r", 4.0, 0.1, 1.5, curve)]
    result = Exploitability("bot:tit-for-tat", 3.0, 3.0, runs, 1.0, 1.0, "naive seed 0", 1.0)
    with mock.patch("detente.evaluate.plots.plt.close"):
        plot_exploiters(result, tmp_path / "e.png")
    fig = plt.gcf()
    plt.close(fig)
    ax = fig.axes[0]
    assert references(ax) == {"mutual cooperation": 3.0, "mutual defection": 1.0}
    dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert [list(line.get_ydata()) for line in dotted] == [[3.0, 2.0, 1.0]]  # the target's
    undeclared = replace(result, cooperation=None, defection=None)
    with mock.patch("detente.evaluate.plots.plt.close"):
        plot_exploiters(undeclared, tmp_path / "e.png")
    fig = plt.gcf()
    plt.close(fig)
    assert references(fig.axes[0]) == {"target self-play": 3.0}


LONG = [f"run:/home/someone/a/long/path/to/all/the/experiments/{m}-seed{s}@{10 * s}" for m in "ab"
        for s in range(4)]  # fmt: skip


def test_long_agent_names_are_shortened_and_stay_distinct():
    assert all(len(n) >= 60 for n in LONG)
    labels = short_labels(LONG)
    assert all(len(label) <= LABEL_WIDTH for label in labels)
    assert len(set(labels)) == len(LONG)
    assert labels[1] == "experiments/a-seed1@10"  # a run by its folder's last parts
    assert short_labels(["bot:grim", "lm:tiny-test"]) == ["bot:grim", "lm:tiny-test"]
    # names alike once shortened: their ends, then numbered
    alike = ["x" * 30 + "a" + "y" * 30, "x" * 30 + "b" + "y" * 30]
    labels = short_labels(alike)
    assert len(set(labels)) == 2 and all(len(label) <= LABEL_WIDTH for label in labels)


def _boxes(fig, texts):
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts if t.get_text()]


def test_heatmap_labels_fit_and_do_not_overlap():
    names = LONG  # 60-character names and more
    small = heatmap_figure(names[:3], [[1.0] * 3] * 3, "mean reward")
    big = heatmap_figure(names, [[float(i + j) for j in range(8)] for i in range(8)], "mean")
    assert big.get_size_inches()[0] > small.get_size_inches()[0]  # grows with the agents
    assert big.get_size_inches()[1] > small.get_size_inches()[1]
    for fig in (small, big):
        fig.canvas.draw()
        ax = fig.axes[0]
        xs, ys = ax.get_xticklabels(), ax.get_yticklabels()
        assert all(len(t.get_text()) <= LABEL_WIDTH for t in (*xs, *ys))
        assert all(t.get_rotation() == 45 for t in xs)
        figure = fig.bbox
        for box in _boxes(fig, [*xs, *ys]):  # nothing cut off at the figure's edge
            assert figure.x0 <= box.x0 and box.x1 <= figure.x1
            assert figure.y0 <= box.y0 and box.y1 <= figure.y1
        rows = _boxes(fig, ys)
        for a, b in zip(rows, rows[1:], strict=False):  # one row label above the next
            assert not a.overlaps(b)
        plt.close(fig)


def test_heatmap_values_are_written_in_a_colour_readable_on_their_cell():
    fig = heatmap_figure(["a", "b"], [[0.0, 1.0], [None, 0.5]], "mean")
    ax = fig.axes[0]
    cells = {t.get_text(): t.get_color() for t in ax.texts}
    plt.close(fig)
    assert cells["0.00"] == "white"  # the darkest viridis cell
    assert cells["1.00"] == "black"  # the brightest (yellow)
    assert "–" in cells  # a cell without games is marked, not blank
