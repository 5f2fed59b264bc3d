"""The main job: per game and seed, train naive RL, sum-of-rewards and Advantage Alignment from
the same start, face them off against each other and the game's bots, and run the paper's
robustness test (a fresh naive learner trained against each frozen prosocial agent); then
aggregate over seeds (mean and 95% Student-t interval).

Per method, IPD: self-play cooperation, P(C | other C) and P(C | other D) in self-play, reward
per round against always-defect, collective reward per round. Trust-and-Split: collective
reward, honesty of hand reports and coins claimed with each hand in self-play, reward per round
against greedy and liar. Robustness: the learner's and the frozen target's reward per round
over the learner's last iterations.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from detente.agents import make_agent
from detente.config import first_difference, load_config
from detente.evaluate.faceoff import FaceoffResult, faceoff
from detente.evaluate.plots import curve_keys, curve_title, plot_curves
from detente.evaluate.prior import MODEL_SCALES, prior_with_model
from detente.evaluate.report import (
    faceoff_html,
    game_info,
    html_page,
    html_table,
    img_tag,
    plots_dir,
    read_metrics,
    transcripts_html,
)
from detente.evaluate.stats import mean_ci95
from detente.games import game_entry, game_names, game_type
from detente.protocol import make_protocol
from detente.rollout.records import GameRecord
from detente.rollout.runner import games_progress
from detente.studies.schedule import Task, run_tasks
from detente.train.trainer import Trainer

METHODS = ("naive", "sum", "adalign")
# The frozen agents the robustness test trains a fresh naive learner against.
ROBUSTNESS_TARGETS = ("adalign", "sum")
# The robustness test's reward is read off the learner's last iterations (a mean over these).
ROBUSTNESS_TAIL = 3


@dataclass(frozen=True)
class DemoSettings:
    games: tuple[str, ...] = ("ipd", "trust-split")
    model: str = "tiny"
    seeds: tuple[int, ...] = (0,)
    eval_games: int = 32
    robustness: bool = True
    overrides: tuple[str, ...] = field(default=())
    jobs: int = 1  # worker processes (1: everything in this process)
    threads: int | None = None  # torch threads per worker (None: the cores shared out)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"3"``, ``"0-4"`` or ``"0,2,5"`` → the seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"bad --seeds {text!r}: expected e.g. 0, 0-4 or 0,2,5")
        seeds += list(range(int(low), int(high) + 1)) if dash else [int(low)]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"bad --seeds {text!r}: empty or repeated")
    return tuple(seeds)


def _clean(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def summarise(
    game: str, result: FaceoffResult, method_names: Sequence[str]
) -> dict[str, dict[str, float | None]]:
    """The demo table: per method, the game's headline numbers (its registration's
    ``headline``) read off the face-off."""
    index = {a: i for i, a in enumerate(result.agents)}
    headline = game_entry(game).headline
    players = game_type(game).describe(game_type(game).config_type()).players
    out: dict[str, dict[str, float | None]] = {}
    for method, name in zip(METHODS, method_names, strict=True):
        i = index[name]
        row: dict[str, float] = {"selfplay_collective_reward": players * result.mean_reward[i][i]}
        for measure in headline.measures:
            row[f"selfplay_{measure}"] = result.measures[measure][i][i]
        for bot in headline.reward_against:
            row[f"reward_vs_{bot.replace('-', '_')}"] = result.mean_reward[i][index[f"bot:{bot}"]]
        out[method] = {k: _clean(v) for k, v in row.items()}
    return out


def format_table(rows: dict[str, dict[str, Any]], label: str = "method") -> str:
    """Terminal table; a cell is a number or {"mean", "ci95"} (printed ``mean ± ci95``)."""

    def cell(value: Any) -> str:
        if isinstance(value, dict):
            half = value["ci95"]
            return "n/a" if value["mean"] is None else (
                f"{value['mean']:.3f}" + ("" if half is None else f" ± {half:.3f}")
            )
        return "n/a" if value is None else f"{value:.3f}"

    keys = list(next(iter(rows.values())))
    width = max(max(len(k) for k in keys), 15) + 2
    lines = [label.ljust(12) + "".join(k.rjust(width) for k in keys)]
    for name, row in rows.items():
        lines.append(name.ljust(12) + "".join(cell(row[k]).rjust(width) for k in keys))
    return "\n".join(lines)


def markdown_table(rows: dict[str, dict[str, Any]], label: str = "method") -> str:
    """The same table as Markdown (the README's form): ``mean ± ci95`` per cell."""
    keys = list(next(iter(rows.values())))
    lines = [f"| {label} | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name, row in rows.items():
        cells = []
        for k in keys:
            v = row[k]
            if v["mean"] is None:
                cells.append("n/a")
            elif v["ci95"] is None:
                cells.append(f"{v['mean']:.2f}")
            else:
                cells.append(f"{v['mean']:.2f} ± {v['ci95']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def aggregate(per_seed: Sequence[dict[str, dict[str, float | None]]]) -> dict[str, dict[str, Any]]:
    """Per row and key: mean over seeds and the 95% t half-width (None for one seed)."""
    out: dict[str, dict[str, Any]] = {}
    for name in per_seed[0]:
        out[name] = {}
        for key in per_seed[0][name]:
            values = [s[name][key] for s in per_seed if s[name][key] is not None]
            if not values:
                out[name][key] = {"mean": None, "ci95": None, "n": 0}
                continue
            mean, half = mean_ci95(values)
            out[name][key] = {
                "mean": mean,
                "ci95": half if math.isfinite(half) else None,
                "n": len(values),
            }
    return out


def _train(config_name: str, overrides: Sequence[str], run_dir: Path) -> Path:
    """Train (or finish an interrupted run of) this configuration into ``run_dir``."""
    config = load_config(config_name, list(overrides))
    if (run_dir / "config.yaml").is_file():
        saved = load_config(str(run_dir / "config.yaml"))
        if saved != config:
            raise ValueError(
                f"{run_dir} holds a run of another configuration "
                f"({first_difference(saved, config)}); choose another --out"
            )
        trainer = Trainer.resume(run_dir)
    else:
        trainer = Trainer.create(config, run_dir)
    trainer.run()
    return run_dir


def robustness(metrics: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Learner's and target's reward per round at the start and over the last iterations."""
    tail = metrics[-ROBUSTNESS_TAIL:]
    return {
        "learner_start": metrics[0]["reward"],
        "learner_end": math.fsum(m["reward"] for m in tail) / len(tail),
        "target_start": metrics[0]["opponent_reward"],
        "target_end": math.fsum(m["opponent_reward"] for m in tail) / len(tail),
    }


def seed_tasks(game: str, settings: DemoSettings, seed: int, out: Path) -> list[Task]:
    """One seed of one game, after the game's model and prior: the three trainings, the
    robustness learners against the frozen Advantage Alignment and sum agents (each after its
    target), then the evaluation (:func:`evaluate_seed`)."""
    scale = MODEL_SCALES[settings.model]
    overrides = (f"seed={seed}", *settings.overrides)
    name, model = f"{game} s{seed}", (_prior_key(game),)
    # the robustness targets first: the learners against them can start sooner
    order = [*ROBUSTNESS_TARGETS, *(m for m in METHODS if m not in ROBUSTNESS_TARGETS)]
    tasks = [
        Task(f"{name} {m}", _train, (f"{game}-{m}-{scale}", overrides, out / m), model)
        for m in order
    ]
    if settings.robustness:
        for target in ROBUSTNESS_TARGETS:
            against = (*overrides, f"train.opponent=run:{out / target}")
            args = (f"{game}-naive-{scale}", against, out / f"exploit-{target}")
            tasks.append(Task(f"{name} exploit-{target}", _train, args, (f"{name} {target}",)))
    needs = tuple(t.key for t in tasks)
    tasks.append(Task(f"{name} evaluation", evaluate_seed, (game, settings, seed, out), needs))
    return tasks


def evaluate_seed(game: str, settings: DemoSettings, seed: int, out: Path) -> dict[str, Any]:
    """The trained seed in ``out``: the face-off of the three methods and the game's bots, the
    robustness numbers, ``demo.json`` and ``report.html``."""
    runs = {m: out / m for m in METHODS}
    agents = [make_agent(f"run:{runs[m]}", game) for m in METHODS]
    agents += [make_agent(f"bot:{b}", game) for b in game_entry(game).headline.bots]
    config = load_config(str(runs["naive"] / "config.yaml"))
    protocol = make_protocol(game, config.game.style, config.game.game_config())
    bar, update = games_progress(f"{game} s{seed} face-off")
    with bar:
        result, records = faceoff(
            game,
            agents,
            protocol,
            settings.eval_games,
            seed=10_000 + seed,
            config=config.game.game_config(),
            invalid=config.invalid,  # moves sampled as in training
            on_step=update,
        )
    result.write_json(out / "faceoff.json")
    summary = summarise(game, result, [a.name for a in agents[: len(METHODS)]])
    exploits = {
        target: robustness(read_metrics(out / f"exploit-{target}"))
        for target in (ROBUSTNESS_TARGETS if settings.robustness else ())
    }
    payload = {"summary": summary, "robustness": exploits}
    (out / "demo.json").write_text(json.dumps(payload, indent=2, allow_nan=False))
    write_seed_report(out, runs, result, records, summary, exploits)
    return payload


def _prior_key(game: str) -> str:
    return f"{game} model and prior"


def _model_and_prior(game: str, settings: DemoSettings) -> dict[str, Any]:
    """Build (or load) the model the game's presets train, and its prior (stored with it)."""
    scale = MODEL_SCALES[settings.model]
    base_model = load_config(f"{game}-naive-{scale}", list(settings.overrides)).model.name
    return prior_with_model(base_model, game)


def run_demo(settings: DemoSettings, out: Path) -> dict[str, Any]:
    """Every game × seed into ``out/GAME/sSEED``, on ``settings.jobs`` worker processes;
    ``out/results.json`` and ``out/README.md`` hold the prior, the tables over seeds and the
    seconds each task took."""
    for game in settings.games:
        if not game_entry(game).headline.bots:
            covered = [g for g in game_names() if game_entry(g).headline.bots]
            raise ValueError(f"the demo covers {', '.join(covered)}, not {game!r}")
    if settings.model not in MODEL_SCALES:
        raise ValueError(f"the demo runs on {', '.join(MODEL_SCALES)}, not {settings.model!r}")
    tasks = [Task(_prior_key(g), _model_and_prior, (g, settings)) for g in settings.games]
    for seed in settings.seeds:
        for game in settings.games:
            tasks += seed_tasks(game, settings, seed, out / game / f"s{seed}")
    seconds: dict[str, float] = {}

    def done(key: str, _: Any, took: float) -> None:
        seconds[key] = round(took, 1)
        tqdm.write(f"{key}: {took:.0f} s")

    started = time.monotonic()
    finished = run_tasks(tasks, settings.jobs, done, "demo", settings.threads)
    results: dict[str, Any] = {"model": settings.model, "seeds": list(settings.seeds)}
    for game in settings.games:
        per_seed = {s: finished[f"{game} s{s} evaluation"] for s in settings.seeds}
        entry: dict[str, Any] = {
            "prior": finished[_prior_key(game)],
            "per_seed": {str(s): p for s, p in per_seed.items()},
            "table": aggregate([p["summary"] for p in per_seed.values()]),
        }
        if settings.robustness:
            entry["robustness"] = aggregate([p["robustness"] for p in per_seed.values()])
        results[game] = entry
    total = round(time.monotonic() - started, 1)
    results["seconds"] = {"total": total, "jobs": settings.jobs, "tasks": seconds}
    (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
    (out / "README.md").write_text(results_markdown(results))
    return results


def results_markdown(results: dict[str, Any]) -> str:
    """The tables of ``results.json`` as Markdown, one section per game."""
    seeds = results["seeds"]
    parts = [f"# detente demo ({results['model']}, seeds {', '.join(map(str, seeds))})", ""]
    for game in (k for k in results if k not in ("model", "seeds", "seconds")):
        entry = results[game]
        parts += [f"## {game}", "", f"Mean ± 95% interval over {len(seeds)} seed(s).", ""]
        parts += [markdown_table(entry["table"]), ""]
        if "robustness" in entry:
            parts += ["Robustness: a fresh naive learner against each frozen agent "
                      f"(reward per round; end = mean of the last {ROBUSTNESS_TAIL} iterations)",
                      "", markdown_table(entry["robustness"], "frozen target"), ""]
    return "\n".join(parts)


def write_seed_report(
    out: Path,
    runs: dict[str, Path],
    result: FaceoffResult,
    records: Sequence[GameRecord],
    summary: dict[str, dict[str, Any]],
    exploits: dict[str, dict[str, float]],
) -> Path:
    """One page, ``out/report.html``: curves of the three methods overlaid, the robustness
    curves, the face-off, self-play transcripts; its plots in ``out/report-plots/``."""
    page = out / "report.html"
    plots = plots_dir(page)
    config = load_config(str(runs[METHODS[0]] / "config.yaml"))
    subject, info = f"{config.game.name} · seed {config.seed}", game_info(config)
    metrics = {m: read_metrics(d) for m, d in runs.items()}
    body = [f"<h1>detente demo: {html.escape(subject)}</h1>", "<h2>Summary</h2>"]
    keys = list(next(iter(summary.values())))
    body.append(
        html_table(
            ["method", *keys],
            [[m, *(v if v is not None else "n/a" for v in summary[m].values())] for m in summary],
        )
    )
    body.append("<h2>Training curves</h2><div class='grid'>")
    for key in curve_keys(next(iter(metrics.values()))):
        path = plot_curves(metrics, key, plots / f"{key}.png", subject=subject, info=info)
        body.append(img_tag(path, curve_title(key, subject)))
    body.append("</div>")
    if exploits:
        body.append("<h2>Robustness: a naive learner against each frozen agent</h2>")
        body.append("<div class='grid'>")
        for target in exploits:
            lines = read_metrics(out / f"exploit-{target}")
            curves = {
                "naive learner": lines,
                f"frozen {target}": [
                    {"iteration": m["iteration"], "reward": m["opponent_reward"]} for m in lines
                ],
            }
            what = f"naive learner vs frozen {target}, reward per round"
            path = plot_curves(curves, "reward", plots / f"exploit-{target}.png", what,
                               subject=subject, info=info)  # fmt: skip
            body.append(img_tag(path, curve_title("reward", subject, what)))
        body.append("</div>")
        body.append(
            html_table(
                ["frozen target", *next(iter(exploits.values()))],
                [[t, *row.values()] for t, row in exploits.items()],
            )
        )
    body.append(faceoff_html(result.to_json(), plots, subject))
    selfplay = [r for r in records if r.seats[0].agent == r.seats[1].agent][:3]
    body.append("<h2>Self-play games</h2>")
    body.extend(transcripts_html(selfplay))
    page.write_text(html_page(f"detente demo: {subject}", body), encoding="utf-8")
    return page
