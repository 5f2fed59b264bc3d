"""Cross-play: cells between independent runs, grouped by method."""

from __future__ import annotations

import pytest

from detente.evaluate.crossplay import Label, agent_label, cross_play
from detente.evaluate.faceoff import FaceoffResult


def test_cross_play_averages_cells_of_different_lineages_only():
    agents = ["run:a1", "run:a2", "run:a1@5", "bot:x"]
    reward = [[3.0, 2.0, 2.5, 1.0],
              [1.0, 2.8, 0.5, 1.5],
              [2.4, 0.7, 2.6, 0.2],
              [4.0, 3.0, 3.5, 1.0]]
    coop = [[1.0, 0.5, 0.9, 0.0], [0.4, 0.9, 0.2, 0.1], [0.8, 0.3, 0.95, 0.0],
            [0.0, 0.0, 0.0, 0.0]]
    result = FaceoffResult(agents, reward, [[0.0] * 4] * 4, 2, 0.0, {"coop_rate": coop})
    labels = {"run:a1": Label("adalign", "/a1", 0), "run:a2": Label("adalign", "/a2", 1),
              "run:a1@5": Label("adalign", "/a1", 0), "bot:x": Label("bot:x", "bot:x")}
    table = cross_play(result, labels)
    assert table.groups == ["adalign", "bot:x"]
    # adalign x adalign: (a1, a2), (a2, a1), (a2, a1@5), (a1@5, a2); never a1 with a1@5
    assert table.reward[0][0] == pytest.approx((2.0 + 1.0 + 0.5 + 0.7) / 4)
    assert table.self_play["adalign"] == pytest.approx((3.0 + 2.8 + 2.6) / 3)
    assert table.reward[0][1] == pytest.approx((1.0 + 1.5 + 0.2) / 3)
    assert table.reward[1][1] is None  # a bot has one lineage: no cross-play with itself
    assert table.measures["coop_rate"][0][0] == pytest.approx((0.5 + 0.4 + 0.2 + 0.3) / 4)
    (row,) = table.independent()
    assert (row["group"], row["runs"]) == ("adalign", 2)
    assert row["self_coop_rate"] == pytest.approx((1.0 + 0.9 + 0.95) / 3)


def test_agent_label_reads_the_runs_method_and_seed(trained_ipd_run):
    label = agent_label(f"run:{trained_ipd_run}@1")
    assert (label.group, label.seed) == ("adalign", 0)
    assert label.lineage == str(trained_ipd_run.resolve())
    assert agent_label("bot:grim") == Label("bot:grim", "bot:grim")
