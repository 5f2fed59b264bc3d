"""The main job: train naive RL, sum-of-rewards and Advantage Alignment from the same start,
then face them off against each other and the game's bots, and summarise per method.

IPD summary per method: self-play cooperation rate, reward per round against always-defect,
collective reward per round in self-play. Trust-and-Split: coins claimed with the upper and the
lower hand in self-play, collective reward, reward against greedy and liar.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detente.config import first_difference, load_config
from detente.evaluate.faceoff import FaceoffResult, faceoff
from detente.evaluate.plots import curve_keys, plot_curves
from detente.evaluate.report import (
    faceoff_html,
    html_page,
    html_table,
    img_tag,
    read_metrics,
    transcript_html,
)
from detente.learn.trainer import Trainer
from detente.policies.agents import make_agent
from detente.protocol import make_protocol
from detente.rollout.records import GameRecord
from detente.rollout.runner import games_progress

METHODS = ("naive", "sum", "adalign")
DEMO_BOTS = {
    "ipd": ("always-defect", "always-cooperate", "tit-for-tat"),
    "trust-split": ("greedy", "liar", "honest"),
}
SCALES = {"tiny": "tiny", "smollm2-135m": "smollm2"}


@dataclass(frozen=True)
class DemoSettings:
    game: str = "ipd"
    model: str = "tiny"
    seed: int = 0
    eval_games: int = 32
    overrides: tuple[str, ...] = ()


def summarise(
    game: str, result: FaceoffResult, method_names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """The demo table: per method, the headline numbers read off the face-off."""
    index = {a: i for i, a in enumerate(result.agents)}
    out: dict[str, dict[str, float]] = {}
    for method, name in zip(METHODS, method_names, strict=True):
        i = index[name]
        row: dict[str, float] = {"selfplay_collective_reward": 2 * result.mean_reward[i][i]}
        if game == "ipd":
            row["selfplay_coop_rate"] = result.measures["coop_rate"][i][i]
            row["reward_vs_always_defect"] = result.mean_reward[i][index["bot:always-defect"]]
            row["coop_after_c_vs_tft"] = result.measures["p_coop_after_c"][i][
                index["bot:tit-for-tat"]
            ]
        else:
            row["selfplay_claim_upper"] = result.measures["claim_upper"][i][i]
            row["selfplay_claim_lower"] = result.measures["claim_lower"][i][i]
            row["reward_vs_greedy"] = result.mean_reward[i][index["bot:greedy"]]
            row["reward_vs_liar"] = result.mean_reward[i][index["bot:liar"]]
        out[method] = {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()
        }
    return out


def format_table(summary: dict[str, dict[str, Any]]) -> str:
    keys = list(next(iter(summary.values())))
    width = max(len(k) for k in keys) + 2
    lines = ["method".ljust(10) + "".join(k.rjust(width) for k in keys)]
    for method, row in summary.items():
        cells = "".join(
            (f"{row[k]:.3f}" if row[k] is not None else "n/a").rjust(width) for k in keys
        )
        lines.append(method.ljust(10) + cells)
    return "\n".join(lines)


def run_demo(settings: DemoSettings, out: Path) -> dict[str, Any]:
    """Train the three methods into ``out/METHOD``, evaluate, write demo.json and report.html."""
    if settings.game not in DEMO_BOTS:
        raise ValueError(f"the demo covers {', '.join(DEMO_BOTS)}, not {settings.game!r}")
    scale = SCALES.get(settings.model)
    if scale is None:
        raise ValueError(f"the demo runs on {', '.join(SCALES)}, not {settings.model!r}")
    runs = {}
    for method in METHODS:
        config = load_config(
            f"{settings.game}-{method}-{scale}", [f"seed={settings.seed}", *settings.overrides]
        )
        run_dir = out / method
        if (run_dir / "config.yaml").is_file():  # an interrupted demo: go on, if it is this one
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
        runs[method] = run_dir
    agents = [make_agent(f"run:{runs[m]}", settings.game) for m in METHODS]
    agents += [make_agent(f"bot:{b}", settings.game) for b in DEMO_BOTS[settings.game]]
    config = load_config(str(runs["naive"] / "config.yaml"))
    protocol = make_protocol(settings.game, config.game.style, config.game.game_config())
    bar, update = games_progress("face-off")
    with bar:
        result, records = faceoff(
            settings.game,
            agents,
            protocol,
            settings.eval_games,
            seed=10_000 + settings.seed,
            config=config.game.game_config(),
            invalid=config.invalid,  # moves sampled as in training
            on_step=update,
        )
    result.write_json(out / "faceoff.json")
    summary = summarise(settings.game, result, [a.name for a in agents[: len(METHODS)]])
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    write_demo_report(out, runs, result, records, summary)
    return summary


def write_demo_report(
    out: Path,
    runs: dict[str, Path],
    result: FaceoffResult,
    records: Sequence[GameRecord],
    summary: dict[str, dict[str, Any]],
) -> Path:
    """One page: curves of the three methods overlaid, the face-off, self-play transcripts."""
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    metrics = {m: read_metrics(d) for m, d in runs.items()}
    body = ["<h1>detente demo</h1>", "<h2>Summary</h2>"]
    keys = list(next(iter(summary.values())))
    body.append(
        html_table(
            ["method", *keys],
            [
                [m, *(summary[m][k] if summary[m][k] is not None else "n/a" for k in keys)]
                for m in summary
            ],
        )
    )
    body.append("<h2>Training curves</h2><div class='grid'>")
    for key in curve_keys(next(iter(metrics.values()))):
        body.append(img_tag(plot_curves(metrics, key, plots / f"{key}.png")))
    body.append("</div>")
    body.append(faceoff_html(result.to_json(), plots))
    selfplay = [r for r in records if r.seats[0].agent == r.seats[1].agent][:3]
    body.append("<h2>Self-play games</h2>")
    body.extend(transcript_html(r) for r in selfplay)
    path = out / "report.html"
    path.write_text(html_page("detente demo", body), encoding="utf-8")
    return path
