"""The league report at test size: bots, a tiny-test run and its snapshots, an exploiter pair;
every part in the JSON, every name escaped in the HTML; the CLI commands."""

from __future__ import annotations

import json

import pytest

from detente.agents import register_agent_kind
from detente.cli import main
from detente.policies.bots.ipd import TitForTat
from detente.studies.league import LeagueSettings, resolve, run_league


class Evil(TitForTat):
    """Tit-for-tat under a name full of markup."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "evil:<b>x</b>&"


register_agent_kind("evil", lambda game, argument: Evil())


@pytest.fixture(scope="module")
def league(tmp_path_factory, trained_ipd_run, tiny_overrides):
    out = tmp_path_factory.mktemp("league")
    settings = LeagueSettings(
        "ipd", ("bot:always-defect", "evil:1", f"run:{trained_ipd_run}"), games=2,
        repetitions=1, probe_games=2, fingerprint_step=0.5, targets=("bot:tit-for-tat",),
        objectives=("naive", "spite"), exploit_seeds=(0,),
        exploit_overrides=(*tiny_overrides, "train.iterations=1"), exploit_games=2,
        snapshots=(str(trained_ipd_run),), starts=20,
    )  # fmt: skip
    return run_league(settings, out), out, trained_ipd_run


def test_every_part_is_in_the_json(league):
    result, out, run = league
    data = json.loads((out / "league.json").read_text())
    agents = ["bot:always-defect", "evil:<b>x</b>&", f"run:{run}"]
    assert data["settings"]["style"] == "compact" and data["settings"]["constrain_moves"]
    assert data["faceoff"]["agents"] == agents
    assert [a["name"] for a in data["tournament"]["agents"]] == sorted(
        agents, key=lambda a: [r["name"] for r in data["tournament"]["ranking"]].index(a))
    assert len(data["tournament"]["ranking"]) == 3 + 15
    strategies = {s["agent"]: s for s in data["strategies"]}
    assert strategies["bot:always-defect"]["nearest"] == "ALLD"
    assert strategies["evil:<b>x</b>&"]["nearest"] == "TFT"
    assert all((out / s["fingerprint"]).is_file() for s in data["strategies"])
    (exploit,) = data["exploitability"]
    assert [r["objective"] for r in exploit["runs"]] == ["naive", "spite"]
    assert exploit["cooperation"] == 3.0
    # the run's snapshots per iteration: the base model is iteration 0
    (points,) = data["ratings_per_iteration"].values()
    assert [p["iteration"] for p in points] == [0, 1, 2]
    assert points[0]["agent"] == "lm:tiny-test"
    rated = {r["agent"] for r in data["ratings"]}
    assert set(agents) | {f"run:{run}@1", f"run:{run}@2"} <= rated
    assert data["cross_play"]["groups"] == ["bot:always-defect", "evil:1", "adalign"]
    assert sum(b["share_of_starts"] for b in data["replicator"]["basins"]) == pytest.approx(1.0)
    assert data["replicator"]["basin_of_cooperation"] is not None
    assert "NaN" not in (out / "league.json").read_text()
    for name in data["plots"].values():
        assert (out / name).is_file()


def test_the_html_escapes_every_name(league):
    _, out, _ = league
    page = (out / "league.html").read_text()
    assert "evil:&lt;b&gt;x&lt;/b&gt;&amp;" in page
    assert "<b>x</b>" not in page
    for title in ("Axelrod tournament", "memory-one", "Exploitability", "Ratings", "Cross-play",
                  "replicator"):  # fmt: skip
        assert title in page


def test_runs_of_different_styles_need_explicit_settings(trained_ipd_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    text = (trained_ipd_run / "config.yaml").read_text().replace("style: compact", "style: full")
    (other / "config.yaml").write_text(text)
    settings = LeagueSettings("ipd", (f"run:{trained_ipd_run}", f"run:{other}"))
    with pytest.raises(ValueError, match="give style and constrain_moves"):
        resolve(settings)
    resolved, _ = resolve(LeagueSettings("ipd", settings.agents, style="full",
                                         constrain_moves=False))  # fmt: skip
    assert (resolved.style, resolved.constrain_moves) == ("full", False)


def test_tournament_and_league_commands(tmp_path, capsys):
    assert main(["tournament", "--game", "ipd", "--agents", "bot:tit-for-tat,bot:grim",
                 "--repetitions", "1", "--out", str(tmp_path / "t")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "bot:tit-for-tat" in printed and "rank / 17" in printed
    data = json.loads((tmp_path / "t" / "tournament.json").read_text())
    assert {a["name"] for a in data["agents"]} == {"bot:tit-for-tat", "bot:grim"}
    assert (tmp_path / "t" / "summary.csv").is_file()
    assert main(["league", "--game", "ipd", "--agents", "bot:tit-for-tat,bot:always-defect",
                 "--games", "2", "--axelrod", "none", "--no-fingerprint", "--probe-games", "1",
                 "--out", str(tmp_path / "l")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "strategy: bot:tit-for-tat nearest TFT" in printed
    assert "basin of cooperation" in printed
    league = json.loads((tmp_path / "l" / "league.json").read_text())
    assert league["tournament"] is None and league["exploitability"] == []
    (tmp_path / "file").write_text("")
    assert main(["league", "--game", "ipd", "--agents", "bot:grim", "--out",
                 str(tmp_path / "file")]) == 1  # fmt: skip
    assert "is a file" in capsys.readouterr().err


def test_short_names_for_plots():
    from detente.studies.league import short_names

    names = ["run:/x/s0/adalign", "run:/x/s0/adalign@10", "bot:grim"]
    assert short_names(names) == {"run:/x/s0/adalign": "s0/adalign",
                                  "run:/x/s0/adalign@10": "s0/adalign@10", "bot:grim": "bot:grim"}
    alike = ["run:/a/s0/adalign", "run:/b/s0/adalign"]
    assert short_names(alike) == {n: n for n in alike}
