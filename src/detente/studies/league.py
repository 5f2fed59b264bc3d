"""One league report: tournament ranks, strategies, exploitability, ratings, cross-play and
population dynamics of a set of agents, as HTML (every text escaped) and JSON beside it.

Flow: one face-off of the agents and of the rated runs' snapshots (iteration 0 is the run's base
model: a fresh LoRA adapter leaves it unchanged) gives the matrix, the games to rate, the
cross-play table and the replicator dynamics; for the IPD, probe games give each agent's
memory-one strategy (and Axelrod's fingerprint), and an Axelrod tournament ranks the agents
among the library's strategies; exploiters are trained against each target. Runs are played
in the protocol style and with the move constraint they were trained with (one setting for all;
agents trained differently are an error unless both are given).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from detente.agents import make_agent
from detente.evaluate.faceoff import FaceoffResult, faceoff
from detente.games import game_type
from detente.protocol import Style, make_protocol
from detente.rollout.runner import InvalidReplyConfig
from detente.studies.exploiters import OBJECTIVES


@dataclass(frozen=True)
class LeagueSettings:
    game: str
    agents: tuple[str, ...]
    games: int = 16  # face-off games per seat order of each pair
    seed: int = 0
    style: str | None = None  # None: the runs' style (full when there is no run)
    constrain_moves: bool | None = None  # None: as the runs were trained (off without runs)
    axelrod: str | None = "classic"  # IPD: the strategy set of the tournament; None: none
    turns: int = 10  # Axelrod match length
    repetitions: int = 3  # Axelrod tournament repetitions
    probe_games: int = 8  # memory-one probe games per probe and seat
    fingerprint: bool = True
    fingerprint_step: float = 0.25
    targets: tuple[str, ...] = ()  # exploiter targets (agent specs)
    objectives: tuple[str, ...] = tuple(OBJECTIVES)
    exploit_seeds: tuple[int, ...] = (0, 1)
    exploit_scale: str = "tiny"
    exploit_overrides: tuple[str, ...] = ()
    exploit_games: int = 16
    snapshots: tuple[str, ...] = ()  # run directories rated per iteration
    starts: int = 200  # random starts of the replicator dynamics


def run_settings(specs: Sequence[str]) -> tuple[str | None, bool | None, Any]:
    """(style, constrain_moves, game options) the ``run:`` agents were trained with; None
    where they differ or there is no run."""
    from detente.config import read_yaml, validate

    found = set()
    for spec in specs:
        kind, _, argument = spec.partition(":")
        if kind == "run":
            run_dir = Path(argument.partition("@")[0])
            config = validate(read_yaml(run_dir / "config.yaml"))
            found.add((config.game.style.value, config.invalid.constrain_moves,
                       json.dumps(config.game.options, sort_keys=True)))  # fmt: skip
    if len(found) != 1:
        return None, None, None
    style, constrain, options = found.pop()
    return style, constrain, json.loads(options)


def resolve(settings: LeagueSettings) -> tuple[LeagueSettings, dict[str, Any]]:
    """Settings with style and constraint filled in from the runs, and the game options."""
    specs = [*settings.agents, *settings.targets,
             *(f"run:{d}" for d in settings.snapshots)]  # fmt: skip
    style, constrain, options = run_settings(specs)
    has_runs = any(s.startswith("run:") for s in specs)
    if has_runs and style is None and (settings.style is None or settings.constrain_moves is None):
        raise ValueError("the runs were trained with different styles, move constraints or game "
                         "options: give style and constrain_moves")  # fmt: skip
    return replace(
        settings,
        style=settings.style or style or Style.FULL.value,
        constrain_moves=settings.constrain_moves if settings.constrain_moves is not None
        else bool(constrain),
    ), options or {}


def sub_result(result: FaceoffResult, names: Sequence[str]) -> FaceoffResult:
    """The face-off restricted to ``names`` (in that order)."""
    index = [result.agents.index(n) for n in names]

    def cut(matrix: list[list[float]]) -> list[list[float]]:
        return [[matrix[i][j] for j in index] for i in index]

    return FaceoffResult(
        list(names), cut(result.mean_reward), cut(result.ci95), result.games,
        result.invalid_rate, {k: cut(v) for k, v in result.measures.items()},
        {n: result.decisions.get(n, 0) for n in names},
        {n: result.invalid_rates.get(n, 0.0) for n in names},
        {n: result.gave_up.get(n, 0) for n in names},
    )


def short_names(names: Sequence[str]) -> dict[str, str]:
    """Plot labels: ``run:`` agents by the last two parts of their folder (and @ITERATION);
    the full names wherever that would make two agents alike."""
    out = {}
    for name in names:
        kind, _, argument = name.partition(":")
        if kind == "run":
            folder, at, iteration = argument.partition("@")
            out[name] = "/".join(Path(folder).parts[-2:]) + at + iteration
        else:
            out[name] = name
    return out if len(set(out.values())) == len(out) else {n: n for n in names}


def _finite(value: Any) -> Any:
    """JSON without NaN: non-finite floats become null, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass
class League:
    settings: dict[str, Any]
    faceoff: dict[str, Any]
    ratings: list[dict[str, Any]]
    ratings_per_iteration: dict[str, list[dict[str, Any]]]
    cross_play: dict[str, Any]
    independent_runs: list[dict[str, Any]]
    replicator: dict[str, Any]
    tournament: dict[str, Any] | None = None
    strategies: list[dict[str, Any]] = field(default_factory=list)
    exploitability: list[dict[str, Any]] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)  # what -> file name in the out folder

    def to_json(self) -> dict[str, Any]:
        return _finite(self.__dict__)


def run_league(settings: LeagueSettings, out: Path) -> League:
    """Everything, written to ``out``: league.json, league.html and the plots."""
    from detente.evaluate.crossplay import agent_label, cross_play
    from detente.evaluate.plots import plot_heatmap
    from detente.evaluate.ratings import per_iteration, plot_ratings, rate_games, snapshot_specs
    from detente.evaluate.replicator import basins, plot_dynamics

    settings, options = resolve(settings)
    game_config = game_type(settings.game).config_type(**options)
    out.mkdir(parents=True, exist_ok=True)
    protocol = make_protocol(settings.game, settings.style, game_config)
    invalid = InvalidReplyConfig(constrain_moves=bool(settings.constrain_moves))
    main = list(dict.fromkeys(settings.agents))
    snapshots: dict[str, dict[int, str]] = {}
    for run_dir in settings.snapshots:
        from detente.config import read_yaml, validate

        model = validate(read_yaml(Path(run_dir) / "config.yaml")).model.name
        snapshots[run_dir] = {0: f"lm:{model}", **snapshot_specs(Path(run_dir))}
    specs = list(dict.fromkeys([*main, *(s for snap in snapshots.values() for s in snap.values())]))
    plots: dict[str, str] = {}
    with ExitStack() as stack:
        policies = {s: stack.enter_context(make_agent(s, settings.game)) for s in specs}
        result, records = faceoff(settings.game, list(policies.values()), protocol,
                                  settings.games, settings.seed, game_config, invalid)  # fmt: skip
        names = {s: policies[s].name for s in specs}
        main_result = sub_result(result, [names[s] for s in main])
        short = short_names(result.agents)
        plot_heatmap([short[a] for a in main_result.agents], main_result.mean_reward,
                     out / "faceoff.png",
                     f"{settings.game}: mean reward per round of the row agent")  # fmt: skip
        plots["faceoff"] = "faceoff.png"
        ratings = rate_games(records, settings.seed)
        rated = {run_dir: per_iteration(ratings, {i: names[s] for i, s in snap.items()})
                 for run_dir, snap in snapshots.items()}  # fmt: skip
        if snapshots:
            in_runs = {names[s] for snap in snapshots.values() for s in snap.values()}
            runs = {short_names([f"run:{d}"])[f"run:{d}"]: points for d, points in rated.items()}
            others = [replace(r, agent=short[r.agent]) for r in ratings if r.agent not in in_runs]
            plot_ratings(runs, others,
                         out / "ratings.png", "ratings per iteration (openskill)")  # fmt: skip
            plots["ratings"] = "ratings.png"
        labels = {names[s]: agent_label(s) for s in main}
        crossed = cross_play(main_result, labels)
        cooperation = main_result.measures.get("coop_rate")
        dynamics = basins(main_result.agents, main_result.mean_reward, cooperation,
                          settings.starts, settings.seed)  # fmt: skip
        plot_dynamics(dynamics, out / "replicator.png", f"replicator dynamics, {settings.game}",
                      short)  # fmt: skip
        plots["replicator"] = "replicator.png"
        league = League(
            settings=_settings_json(settings), faceoff=main_result.to_json(),
            ratings=[r.to_json() for r in ratings], ratings_per_iteration=rated,
            cross_play=crossed.to_json(), independent_runs=crossed.independent(),
            replicator=dynamics.to_json(), plots=plots,
        )  # fmt: skip
        if settings.game == "ipd":
            _ipd_parts(league, settings, [policies[s] for s in main], protocol, game_config,
                       invalid, out)  # fmt: skip
    for target in settings.targets:
        league.exploitability.append(_exploit(settings, target, out))
    (out / "league.json").write_text(json.dumps(league.to_json(), indent=2))
    (out / "league.html").write_text(league_html(league, out), encoding="utf-8")
    return league


def _settings_json(settings: LeagueSettings) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.__dict__.items()}


def _ipd_parts(league, settings, agents, protocol, game_config, invalid, out) -> None:
    """The IPD's own parts: memory-one strategies, fingerprints, the Axelrod tournament."""
    from detente.evaluate.strategy import PROBES, fingerprint, memory_one

    probes = [make_agent(p, "ipd") for p in PROBES]
    for k, agent in enumerate(agents):
        estimate = memory_one(agent, probes, protocol, settings.probe_games, settings.seed,
                              game_config, invalid)  # fmt: skip
        if settings.fingerprint:
            path = fingerprint(agent, out / f"fingerprint-{k}.png", settings.style,
                               bool(settings.constrain_moves), settings.fingerprint_step,
                               settings.turns, 1, settings.seed)  # fmt: skip
            estimate.fingerprint = path.name
        league.strategies.append(estimate.to_json())
    if settings.axelrod:
        from detente.evaluate.axelrod_player import tournament

        result, _ = tournament(
            agents, settings.axelrod, settings.turns, settings.repetitions, settings.seed,
            game_config, settings.style, bool(settings.constrain_moves), plots=out,
        )  # fmt: skip
        league.tournament = result.to_json()
        league.plots.update({f"tournament {k}": v for k, v in result.plots.items()})


def _exploit(settings: LeagueSettings, target: str, out: Path) -> dict[str, Any]:
    from detente.studies.exploiters import exploitability, plot_exploiters, slug

    result = exploitability(
        settings.game, target, out / "exploiters", settings.objectives, settings.exploit_seeds,
        settings.exploit_scale, settings.exploit_overrides, settings.exploit_games,
    )  # fmt: skip
    name = f"exploiters-{slug(target)}.png"
    plot_exploiters(result, out / name)
    return {**result.to_json(), "plot": name}


# ---- the report ---------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def _rows(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    return [[_cell(v) for v in row] for row in rows]


def league_html(league: League, out: Path) -> str:
    """The report page: plots embedded, every name and number escaped."""
    from detente.evaluate.report import html_page, html_table, img_tag

    esc = html.escape
    data = league.to_json()
    body = [f"<h1>detente league: {esc(str(data['settings']['game']))}</h1>",
            f"<p>{len(data['faceoff']['agents'])} agents, {data['faceoff']['games']} games per "
            "seat order of each pair; every number is also in league.json.</p>"]  # fmt: skip

    def image(key: str) -> str:
        name = data["plots"].get(key)
        return img_tag(out / name) if name else ""

    fo = data["faceoff"]
    body.append("<h2>Face-off</h2>" + image("faceoff"))
    body.append(html_table(["row \\ column", *fo["agents"]], _rows(
        [[a, *row] for a, row in zip(fo["agents"], fo["mean_reward"], strict=True)])))
    if data["tournament"]:
        t = data["tournament"]
        body.append(f"<h2>Axelrod tournament ({esc(t['strategies'])}, {t['turns']} turns, "
                    f"{t['repetitions']} repetitions)</h2>")  # fmt: skip
        body.append(html_table(
            ["agent", "rank", "of", "median score per turn", "cooperation rating", "wins"],
            _rows([[a["name"], a["rank"] + 1, len(t["ranking"]), a["median_score"],
                    a["cooperation_rating"], a["wins"]] for a in t["agents"]]),
        ))  # fmt: skip
        body.append("<details><summary>full ranking</summary>" + html_table(
            ["rank", "player", "median score", "cooperation"],
            _rows([[r["rank"] + 1, r["name"], r["median_score"], r["cooperation_rating"]]
                   for r in t["ranking"]])) + "</details>")  # fmt: skip
        body.append("<div class='grid'>" + image("tournament boxplot")
                    + image("tournament payoff") + "</div>")  # fmt: skip
    if data["strategies"]:
        body.append("<h2>What strategy did it learn? (memory-one, from probe games)</h2>")
        body.append(html_table(
            ["agent", "P(C|CC)", "P(C|CD)", "P(C|DC)", "P(C|DD)", "P(C first)", "nearest",
             "distance"],
            _rows([[s["agent"], *(s["p"][k] for k in ("CC", "CD", "DC", "DD", "first")),
                    s["nearest"], s["distance"]] for s in data["strategies"]]),
        ))  # fmt: skip
        prints = [img_tag(out / s["fingerprint"]) for s in data["strategies"] if s["fingerprint"]]
        if prints:
            body.append("<div class='grid'>" + "".join(prints) + "</div>")
    if data["exploitability"]:
        body.append("<h2>Exploitability (learned exploiters)</h2>")
        body.append(html_table(
            ["target", "exploitability", "gain over self-play", "best exploiter",
             "mutual cooperation", "target self-play"],
            _rows([[e["target"], e["exploitability"], e["gain_over_self_play"], e["best"],
                    e["cooperation"], e["self_play"]] for e in data["exploitability"]]),
        ))  # fmt: skip
        body.append(html_table(
            ["target", "objective", "seed", "exploiter reward", "± 95%", "target reward"],
            _rows([[e["target"], r["objective"], r["seed"], r["reward"], r["reward_ci95"],
                    r["target_reward"]] for e in data["exploitability"] for r in e["runs"]]),
        ))  # fmt: skip
        body.append("<div class='grid'>" + "".join(
            img_tag(out / e["plot"]) for e in data["exploitability"]) + "</div>")  # fmt: skip
    body.append("<h2>Ratings (openskill, Plackett-Luce; a game's winner out-scores the other)"
                "</h2>")
    body.append(html_table(["agent", "μ − 3σ", "μ", "σ", "games", "wins", "draws"], _rows(
        [[r["agent"], r["ordinal"], r["mu"], r["sigma"], r["games"], r["wins"], r["draws"]]
         for r in data["ratings"]])) + image("ratings"))  # fmt: skip
    cp = data["cross_play"]
    body.append("<h2>Cross-play (cells between independent runs)</h2>")
    body.append(html_table(["row \\ column", *cp["groups"], "self-play"], _rows(
        [[g, *row, cp["self_play"][g]] for g, row in zip(cp["groups"], cp["reward"],
                                                          strict=True)])))  # fmt: skip
    if data["independent_runs"]:
        keys = [k for k in data["independent_runs"][0] if k not in ("group", "runs")]
        body.append(html_table(["group", "runs", *keys], _rows(
            [[r["group"], r["runs"], *(r[k] for k in keys)] for r in data["independent_runs"]])))
    rep = data["replicator"]
    body.append("<h2>Population dynamics (replicator)</h2>" + image("replicator"))
    coop = rep["basin_of_cooperation"]
    if coop is not None:
        body.append(f"<p>basin of cooperation: {coop:.3f} of {rep['starts']} random starts</p>")
    body.append(html_table(["end state (support)", "share of starts", "mean payoff",
                            "cooperation"], _rows(
        [[" + ".join(b["support"]), b["share_of_starts"], b["payoff"], b["cooperation"]]
         for b in rep["basins"]])))  # fmt: skip
    body.append(html_table(["rest point", "payoff", "stability"], _rows(
        [[", ".join(f"{a} {x:.2f}" for a, x in zip(rep["agents"], p["shares"], strict=True)
                    if x > 1e-6), p["payoff"], p["stability"]]
         for p in rep["rest_points"]])))  # fmt: skip
    return html_page("detente league", body)
