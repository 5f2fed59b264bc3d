"""The ``detente`` command line: thin over the library.

A command that cannot do what was asked (a bad spec or config, a damaged file, an output path
that cannot be written, a port in use) prints one line, ``detente: error: ...``, naming the
value or file, and exits with status 1; output paths are checked before any game is played.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detente.agents import PlaySettings, as_trained, make_agent
from detente.evaluate.faceoff import focal_lineup
from detente.games import PLAYER_NAMES, game_entry, game_names, game_type, make_game
from detente.games.base import player_name
from detente.policies.base import Policy
from detente.protocol import Style, make_protocol
from detente.rollout.records import write_records
from detente.rollout.runner import InvalidReplyConfig, games_progress
from detente.studies.schedule import available_cores

if TYPE_CHECKING:
    from detente.evaluate.faceoff import FaceoffResult


def output_path(value: str | None, flag: str) -> Path | None:
    """``value`` as a file this command can write (its missing folders are created when it is
    written), checked before any work; a one-line error naming ``flag`` otherwise."""
    if value is None:
        return None
    path = Path(value)
    if path.is_dir():
        raise ValueError(f"{flag} {path}: is a folder, not a file")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{flag} {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: cannot write in {folder}")
    return path


def _writing(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _play_settings(specs: Sequence[str], args: argparse.Namespace) -> PlaySettings:
    """Style, move constraint and game options: as the ``run:`` agents were trained, unless
    ``--style`` / ``--constrain-moves`` say otherwise; where they came from, printed."""
    settings = as_trained(specs, args.style, _constraint(args))
    for note in settings.notes:
        print(note)
    return settings


def plural(count: int, noun: str) -> str:
    """``1 game``, ``2 games``."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def positive(text: str) -> int:
    """An argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number (at least 1)")
    return value


def cmd_faceoff(args: argparse.Namespace) -> int:
    from detente.evaluate.faceoff import faceoff, population_faceoff, self_play_note

    outputs = {
        flag: output_path(getattr(args, flag), f"--{flag}")
        for flag in ("json", "csv", "heatmap", "transcripts")
    }
    if (args.agents is None) == (args.population is None):
        raise ValueError("give --agents (the matrix of every pair) or --population (one line-up)")
    if args.population is not None and (outputs["csv"] or outputs["heatmap"]):
        raise ValueError("--csv and --heatmap draw the matrix of --agents, not a --population")
    specs = [s.strip() for s in (args.agents or args.population).split(",") if s.strip()]
    settings = _play_settings(specs, args)
    config = game_type(args.game).config_type(**settings.options)
    protocol = make_protocol(args.game, settings.style, config)
    invalid = InvalidReplyConfig(constrain_moves=settings.constrain_moves)
    with ExitStack() as stack:
        made: dict[str, Policy] = {}
        for spec in specs:  # an agent named twice in a population holds several seats
            if spec not in made:
                made[spec] = stack.enter_context(make_agent(spec, args.game))
        bar, update = games_progress("face-off")
        with bar:
            if args.population is not None:
                result, records = population_faceoff(
                    args.game, [made[s] for s in specs], protocol, args.games, args.seed,
                    config=config, invalid=invalid, on_step=update,
                )  # fmt: skip
            else:
                result, records = faceoff(
                    args.game, list(made.values()), protocol, args.games, args.seed,
                    config=config, invalid=invalid, on_step=update,
                )  # fmt: skip
    if args.population is not None:
        print(
            f"{args.game}: mean reward per round of each agent of the population, "
            f"{plural(args.games, 'game')} per rotation of the seats"
        )
        print(result.table())
        if outputs["json"]:
            _writing(outputs["json"]).write_text(json.dumps(result.to_json(), indent=2))
            print(f"wrote {args.json}")
    else:
        _print_matrix(args, result, self_play_note(game_type(args.game).describe(config).players))
        _write_matrix(args, outputs, result)
    if outputs["transcripts"]:
        write_records(_writing(outputs["transcripts"]), records)
        print(f"wrote {args.transcripts} ({plural(len(records), 'game')})")
    return 0


def _print_matrix(args: argparse.Namespace, result: FaceoffResult, note: str) -> None:
    print(
        f"{args.game}: mean reward per round of the row agent (± 95% CI), "
        f"{plural(args.games, 'game')} per seat order"
    )
    print(result.table())
    print(note)
    for table in result.measure_tables():
        print()
        print(table)
    for line in result.reply_problems():  # each agent's own rate (bots do not dilute it)
        print(line)


def _write_matrix(
    args: argparse.Namespace, outputs: dict[str, Path | None], result: FaceoffResult
) -> None:
    if outputs["json"]:
        result.write_json(_writing(outputs["json"]))
        print(f"wrote {args.json}")
    if outputs["csv"]:
        result.write_csv(_writing(outputs["csv"]))
        print(f"wrote {args.csv}")
    if outputs["heatmap"]:
        from detente.evaluate.plots import plot_heatmap

        plot_heatmap(
            result.agents,
            result.mean_reward,
            _writing(outputs["heatmap"]),
            f"{args.game}: mean reward per round of the row agent",
        )
        print(f"wrote {args.heatmap}")


def cmd_play(args: argparse.Namespace) -> int:
    from detente.policies.human import HumanPolicy, HumanQuit
    from detente.rollout.runner import Match, play

    transcript = output_path(args.transcript, "--transcript")
    human = HumanPolicy()
    settings = _play_settings([args.opponent], args)
    opponent = make_agent(args.opponent, args.game)
    game = make_game(args.game, game_type(args.game).config_type(**settings.options), args.seed)
    seat_names = [player_name(p).lower() for p in range(game.num_players)]
    if args.seat not in seat_names:
        raise ValueError(f"--seat {args.seat}: {args.game} has {game.num_players} seats "
                         f"({', '.join(seat_names)})")  # fmt: skip
    seat = seat_names.index(args.seat)
    policies = focal_lineup(human, opponent, game.num_players, seat)
    protocol = make_protocol(args.game, settings.style, game.config)
    invalid = InvalidReplyConfig(constrain_moves=settings.constrain_moves)
    print(f"detente play: {args.game} against {opponent.name}. Type /quit (or Ctrl-C) to stop.")
    try:
        (record,) = play([Match(game, policies, "play-0")], protocol, invalid, seed=args.seed)
    except (HumanQuit, KeyboardInterrupt) as stopped:
        records = getattr(stopped, "records", None) or []  # KeyboardInterrupt: none
        print("\nStopped. Bye.")
        if transcript and records and records[0].num_rounds and records[0].rewards:
            write_records(_writing(transcript), records)
            print(f"wrote {args.transcript} (the game as far as it went: "
                  f"{plural(len(records[0].rewards), 'round')})")  # fmt: skip
        return 0
    others = record.co_players(seat)

    def each(values: Sequence[Any]) -> str:  # the opponent's seats' values
        return ", ".join(f"{values[q]:g}" if isinstance(values[q], float) else str(values[q])
                         for q in others)  # fmt: skip

    if record.infos and "moves" in record.infos[-1]:  # the last round, never shown in a prompt
        moves = record.infos[-1]["moves"]
        print(f"\nlast round: you played {moves[seat]}, {opponent.name} played {each(moves)}")
    print("\n=== Game over ===")
    score = [0.0] * record.num_players
    for r, rewards in enumerate(record.rewards):
        score = [total + reward for total, reward in zip(score, rewards, strict=True)]
        print(f"round {r + 1}: you {rewards[seat]:g}, {opponent.name} {each(rewards)} "
              f"(score: you {score[seat]:g}, {opponent.name} {each(score)})")  # fmt: skip
    totals = [sum(r[p] for r in record.rewards) for p in range(record.num_players)]
    print(
        f"total ({player_name(seat)} = you): you {totals[seat]:g}, "
        f"{opponent.name} {each(totals)}"
    )
    turns = [t for q in others for t in record.seats[q].turns]
    invalid_turns = sum(t.invalid for t in turns)
    if invalid_turns:
        print(f"{opponent.name}: {invalid_turns} of {plural(len(turns), 'reply')} did not parse (after "
              "the retries; the default move or an empty message was played)")  # fmt: skip
    if transcript:
        write_records(transcript, [record])
        print(f"wrote {args.transcript}")
    return 0


def default_run_dir(name: str, overrides: Sequence[str], seed: int) -> str:
    """``runs/NAME[-OVERRIDES]-sSEED``: the overrides in the name, each as the last part of its
    key and its value (``train.lr=1e-4`` → ``lr1e-4``), so runs that differ get different
    folders; but the seed (already there) and the keys a resumed run may change
    (``RESUMABLE_KEYS``, e.g. ``train.iterations``: that run is continued with ``detente
    resume``); a long list is shortened to a hash of it."""
    import hashlib
    import re

    from detente.config import RESUMABLE_KEYS

    parts = []
    for text in overrides:
        key, _, value = text.partition("=")
        key = key.strip()
        if key == "seed" or any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS):
            continue
        part = key.rsplit(".", 1)[-1] + value.strip()
        parts.append(re.sub(r"[^A-Za-z0-9_.+-]+", "_", part).strip("_") or "x")
    tail = "-".join(parts)
    if len(tail) > 60:
        tail = "o" + hashlib.sha1("\n".join(overrides).encode()).hexdigest()[:10]
    return f"runs/{name}{'-' + tail if tail else ''}-s{seed}"


def cmd_train(args: argparse.Namespace) -> int:
    from detente.config import load_config
    from detente.train.trainer import Trainer

    config = load_config(args.config, args.overrides)
    run_dir = Path(args.out or default_run_dir(Path(args.config).stem, args.overrides, config.seed))
    trainer = Trainer.create(config, run_dir)
    print(f"run directory: {run_dir}")
    if not _run_until_stopped(trainer, run_dir):
        return 130
    print(f"done: {trainer.state.iteration} iterations; metrics in {run_dir / 'metrics.jsonl'}")
    _print_evaluation(run_dir)
    return 0


def _run_until_stopped(trainer: Any, run_dir: Path) -> bool:
    """``trainer.run()``; Ctrl-C is one line saying where the run stopped and how to go on
    (False then)."""
    from detente.learn.checkpoint import latest_checkpoint, load_state

    try:
        trainer.run()
        return True
    except KeyboardInterrupt:
        trainer.close()
        folder = latest_checkpoint(run_dir)
        done = load_state(folder).iteration if folder is not None else 0
        print(f"\nstopped at iteration {done} of {trainer.config.train.iterations} (the last "
              f"checkpoint); continue with `detente resume {run_dir}`", file=sys.stderr)  # fmt: skip
        return False


def _print_evaluation(run_dir: Path) -> None:
    from detente.evaluate.report import eval_summary, read_metrics

    lines = eval_summary(read_metrics(run_dir))
    if lines:
        print("evaluation against the bots (eval.bots; reward per round ± 95% CI over games):")
        print("\n".join(lines))


def cmd_resume(args: argparse.Namespace) -> int:
    from detente.train.trainer import Trainer

    trainer = Trainer.resume(Path(args.run_dir), overrides=args.overrides)
    print(f"resuming {args.run_dir} at iteration {trainer.state.iteration}")
    if not _run_until_stopped(trainer, Path(args.run_dir)):
        return 130
    _print_evaluation(Path(args.run_dir))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from detente.evaluate.report import write_report
    from detente.rollout.records import read_records

    target = Path(args.target)
    out = output_path(args.out, "--out")
    if not target.exists():
        raise ValueError(f"{target}: no such run directory or transcript")
    if target.is_dir():
        if not any((target / name).exists() for name in ("config.yaml", "metrics.jsonl")):
            raise ValueError(f"{target} holds no run (no config.yaml or metrics.jsonl); give a "
                             "run directory (see `detente train`) or a .jsonl.gz transcript")  # fmt: skip
        path = write_report(target, out)
    else:  # a transcript file (e.g. from `detente play --transcript`)
        out = out or target.with_suffix("").with_suffix(".html")
        path = write_report(
            target.parent,
            out,
            records=list(read_records(target)),
            title=f"detente transcript: {target.name}",
            transcripts=1000,
        )
    print(f"wrote {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from detente.evaluate.compare import compare_runs, write_comparison

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    comparison = compare_runs([Path(d) for d in args.run_dirs])
    print(comparison.text())
    print(f"wrote {write_comparison(comparison, out)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from detente.serve import ServeLimits, serve

    names = ("max_body_bytes", "max_messages", "max_prompt_chars", "request_timeout", "max_pending")
    limits = ServeLimits(**{n: getattr(args, n) for n in names if getattr(args, n) is not None})
    settings = _play_settings([args.agent], args)
    serve(
        args.agent, args.game, settings, args.host, args.port, args.api_key_env, args.seed,
        limits, args.alias,
    )  # fmt: skip
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from detente.studies.demo import DemoSettings, format_table, parse_seeds, run_demo

    seeds = parse_seeds(args.seeds)
    games = tuple(args.game) if args.game else ("ipd", "trust-split")
    out = Path(args.out or f"demo-out/{args.model}")
    settings = DemoSettings(
        games, args.model, seeds, args.eval_games, not args.no_robustness, tuple(args.overrides),
        jobs=args.jobs,
    )
    results = run_demo(settings, out)
    for game in games:
        entry = results[game]
        print(f"\n{game} with {args.model}: trained from the same start, seeds {args.seeds}")
        print(format_table(entry["table"]))
        if "robustness" in entry:
            print("robustness: a fresh naive learner against each frozen agent")
            print(format_table(entry["robustness"], "frozen"))
    took = results["seconds"]
    print(f"\n{took['total'] / 60:.1f} minutes on {took['jobs']} worker process(es); "
          f"wrote {out / 'results.json'}, {out / 'README.md'} and a report.html per seed")
    return 0


def cmd_exploit(args: argparse.Namespace) -> int:
    """A fresh naive learner trained against a frozen target on the objective's mixed reward
    (naive, spite, margin); both reward curves, plotted."""
    from detente.config import load_config
    from detente.evaluate.plots import plot_curves
    from detente.evaluate.report import read_metrics
    from detente.studies.exploiters import OBJECTIVES
    from detente.train.trainer import Trainer

    preset = f"{args.game}-naive-{args.scale}"
    w_self, w_other = OBJECTIVES[args.objective]
    objective = [f"train.reward_weights=[{w_self}, {w_other}]"]
    config = load_config(preset, [f"train.opponent={args.target}", *objective, *args.overrides])
    named = [f"target={args.target}", *([f"objective={args.objective}"]
             if args.objective != "naive" else []), *args.overrides]  # fmt: skip
    run_dir = Path(args.out or default_run_dir(f"exploit-{args.game}", named, config.seed))
    trainer = Trainer.create(config, run_dir)
    trainer.run()
    lines = read_metrics(run_dir)
    curves = {
        "learner": [{"iteration": m["iteration"], "reward": m["reward"]} for m in lines],
        f"target {args.target}": [
            {"iteration": m["iteration"], "reward": m["opponent_reward"]} for m in lines
        ],
    }
    plot = plot_curves(
        curves,
        "reward",
        run_dir / "exploit.png",
        f"{args.objective} learner vs {args.target}: reward per round",
    )
    first, last = lines[0], lines[-1]
    print(
        f"learner reward per round {first['reward']:.3f} -> {last['reward']:.3f}; "
        f"target {first['opponent_reward']:.3f} -> {last['opponent_reward']:.3f}"
    )
    print(f"wrote {plot}")
    return 0


def cmd_prior(args: argparse.Namespace) -> int:
    """Probe a base model's conditional behaviour; an embedded model keeps the numbers."""
    import json

    from detente.evaluate.prior import format_prior, prior_with_model, stored_prior_path

    json_out = output_path(args.json, "--json")
    path = stored_prior_path(args.model, args.game)
    if args.remeasure and path is not None and path.is_file():
        path.unlink()
    prior = prior_with_model(args.model, args.game, args.games)
    print(f"{args.game} prior of {args.model} ({args.games} games per seat order and probe)")
    print(format_prior(prior["measured"]))
    if prior["target"]:
        print("persona target: " + ", ".join(f"{k} {v:.2f}" for k, v in prior["target"].items()))
    if path is not None:
        print(f"stored with the model: {path}")
    if json_out:
        _writing(json_out).write_text(json.dumps(prior, indent=2))
        print(f"wrote {args.json}")
    return 0


def _specs(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _constraint(args: argparse.Namespace) -> bool | None:
    return {"on": True, "off": False}.get(args.constrain_moves)


def cmd_tournament(args: argparse.Namespace) -> int:
    """An Axelrod tournament of IPD agents among the library's strategies."""
    import json

    from detente.evaluate.axelrod_player import tournament
    from detente.games.ipd import IPDConfig
    from detente.studies.league import LeagueSettings, resolve

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    specs = _specs(args.agents)
    settings, options = resolve(
        LeagueSettings("ipd", tuple(specs), style=args.style, constrain_moves=_constraint(args))
    )
    with ExitStack() as stack:
        agents = [stack.enter_context(make_agent(spec, "ipd")) for spec in specs]
        result, results = tournament(
            agents, args.axelrod, args.turns, args.repetitions, args.seed, IPDConfig(**options),
            settings.style, bool(settings.constrain_moves), plots=out,
        )  # fmt: skip
    _writing(out / "tournament.json").write_text(json.dumps(result.to_json(), indent=2))
    results.write_summary(str(out / "summary.csv"))
    print(f"Axelrod tournament ({args.axelrod}: {len(result.ranking)} players, {args.turns} "
          f"turns, {args.repetitions} repetitions)")  # fmt: skip
    print(result.table())
    print(f"wrote {out / 'tournament.json'}, {out / 'summary.csv'} and Axelrod's plots")
    return 0


def cmd_league(args: argparse.Namespace) -> int:
    """The league report: tournament, strategies, exploiters, ratings, cross-play, dynamics."""
    from detente.studies.league import LeagueSettings, run_league

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    settings = LeagueSettings(
        game=args.game,
        agents=tuple(_specs(args.agents)),
        games=args.games,
        seed=args.seed,
        style=args.style,
        constrain_moves=_constraint(args),
        axelrod=None if args.axelrod == "none" else args.axelrod,
        turns=args.turns,
        repetitions=args.repetitions,
        probe_games=args.probe_games,
        fingerprint=not args.no_fingerprint,
        targets=tuple(_specs(args.targets or "")),
        objectives=tuple(_specs(args.objectives)),
        exploit_seeds=tuple(int(s) for s in _specs(args.exploit_seeds)),
        exploit_scale=args.exploit_scale,
        exploit_overrides=tuple(args.exploit_override or ()),
        exploit_games=args.exploit_games,
        snapshots=tuple(args.snapshots or ()),
    )
    league = run_league(settings, out)
    if league.tournament:
        for agent in league.tournament["agents"]:
            print(f"tournament: {agent['name']} rank {agent['rank'] + 1} of "
                  f"{len(league.tournament['ranking'])}, score {agent['median_score']:.3f}, "
                  f"cooperation {agent['cooperation_rating']:.3f}")  # fmt: skip
    for s in league.strategies:
        print(f"strategy: {s['agent']} nearest {s['nearest']} (distance {s['distance']:.3f})")
    for e in league.exploitability:
        print(f"exploitability of {e['target']}: {e['exploitability']:.3f} ({e['best']})")
    coop = league.replicator["basin_of_cooperation"]
    if coop is not None:
        print(f"replicator: basin of cooperation {coop:.3f}")
    print(f"wrote {out / 'league.html'} and {out / 'league.json'}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from detente.config import dump_config, load_config, preset_names

    if args.show:
        print(dump_config(load_config(args.show, args.overrides)), end="")
        return 0
    print("\n".join(preset_names()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detente", description=__doc__, formatter_class=HelpFormatter,
        epilog="examples:\n  " + "\n  ".join(e for es in EXAMPLES.values() for e in es[:1])
        + "\n\n" + bots_listing() + "\n\n`detente COMMAND -h` for a command's options.",
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"detente {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    games = game_names()

    def trained_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--style", choices=[s.value for s in Style],
                       help="prompt style (default: as the run: agents were trained; full "
                       "without runs)")  # fmt: skip
        p.add_argument("--constrain-moves", nargs="?", const="on", choices=["on", "off"],
                       help="sample language models' moves format-constrained from the first "
                       "try (default: as the run: agents were trained, e.g. on for the CPU "
                       "presets; off without runs; the bare flag: on)")  # fmt: skip

    p = sub.add_parser("faceoff", help="every pair of agents, both seats, N games each")
    p.add_argument("--game", required=True, choices=games)
    p.add_argument("--agents", help="comma-separated agent specs, e.g. bot:grim: the matrix of "
                   "every pair (N players: the row agent among N − 1 copies of the column agent)")
    p.add_argument("--population", help="instead of --agents: one agent spec per seat (a spec "
                   "may repeat), played in every rotation of the seats; reward per agent")
    p.add_argument("--games", type=positive, default=100,
                   help="games per seat order of each pair, or per rotation of a population "
                   "(default 100)")
    p.add_argument("--seed", type=int, default=0)
    trained_flags(p)
    p.add_argument("--json", help="write the matrix as JSON here")
    p.add_argument("--csv", help="write the cells (reward, CI, behaviour measures) as CSV here")
    p.add_argument("--heatmap", help="write the matrix as a PNG heatmap here")
    p.add_argument("--transcripts", help="write the games as gzipped JSON lines here")
    p.set_defaults(func=cmd_faceoff)

    p = sub.add_parser("play", help="play a game against an agent in the terminal")
    p.add_argument("--game", required=True, choices=games)
    p.add_argument("--opponent", required=True, help="agent spec, e.g. bot:tit-for-tat")
    p.add_argument("--seat", choices=[name.lower() for name in PLAYER_NAMES], default="alice",
                   help="your seat (games of N players: the first N names; the opponent holds "
                   "every other seat)")
    p.add_argument("--seed", type=int, default=0)
    trained_flags(p)
    p.add_argument("--transcript", help="write the game as gzipped JSON lines here")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("train", help="train an adapter (a preset name or a YAML file)")
    p.add_argument("config", help="preset (e.g. ipd-adalign-tiny; see `detente presets`) or YAML")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.lr=1e-4")
    p.add_argument("--out", help="run directory (default runs/PRESET[-OVERRIDES]-sSEED, e.g. "
                   "runs/ipd-adalign-tiny-lr0.002-s0); never overwritten")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue a run from its last checkpoint")
    p.add_argument("run_dir")
    p.add_argument("overrides", nargs="*",
                   help="changes a resumed run may take, e.g. train.iterations=40 (extends a "
                   "finished run)")  # fmt: skip
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("report", help="HTML report of a run directory or a transcript file")
    p.add_argument("target", help="RUN_DIR, or a .jsonl.gz transcript")
    p.add_argument("--out", help="where to write the HTML (default: inside the run)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="compare runs: curves overlaid, start → end, configs "
                       "diffed")  # fmt: skip
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="two or more run directories")
    p.add_argument("--out", default="compare-out", help="folder of compare.html and its plots")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("serve", help="serve an agent as an OpenAI-compatible chat API")
    p.add_argument("agent", help="agent spec, e.g. bot:tit-for-tat or run:runs/ipd@100")
    p.add_argument("--game", required=True, choices=games)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p.add_argument("--port", type=int, default=8000)
    trained_flags(p)
    p.add_argument("--api-key-env", help="require the key held in this environment variable")
    p.add_argument("--seed", type=int, default=0, help="seeds requests that send none")
    p.add_argument("--alias", action="append", default=[], metavar="NAME",
                   help="another model name to answer to (repeatable)")  # fmt: skip
    for flag, kind, meaning in [
        ("--max-body-bytes", int, "a larger request body gets 413 (default 1 MiB)"),
        ("--max-messages", int, "more messages get 400 (default 512)"),
        ("--max-prompt-chars", int, "a longer prompt, all contents, gets 400 (default 16000)"),
        ("--request-timeout", float, "seconds to wait for and run at the agent (default 120)"),
        ("--max-pending", int, "requests queued at once; the next gets 503 (default 64)"),
    ]:
        p.add_argument(flag, type=kind, help=meaning)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="train naive, sum and adalign, face them off, report")
    p.add_argument(
        "--game",
        action="append",
        choices=[g for g in games if game_entry(g).headline.bots],
        help="a game to run (repeatable; default the IPD and Trust-and-Split, the paper's)",
    )
    p.add_argument("--model", choices=["tiny", "smollm2-135m"], default="tiny")
    p.add_argument("--seeds", default="0", help="seeds, e.g. 0, 0-4 or 0,2,5 (default 0)")
    p.add_argument("--jobs", type=int, default=min(available_cores(), 4),
                   help="worker processes for the trainings and evaluations, each with the "
                   "cores shared out as torch threads (default: the cores, at most 4; 1: all "
                   "in this process)")
    p.add_argument("--eval-games", type=int, default=32, help="games per seat order per pair")
    p.add_argument(
        "--no-robustness", action="store_true", help="skip the naive learners against the frozen agents"
    )
    p.add_argument("--out", help="output folder (default demo-out/MODEL)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides for all three runs")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("exploit", help="train a fresh naive learner against a frozen target")
    p.add_argument("--game", required=True, choices=games)
    p.add_argument("--target", required=True, help="agent spec: bot:NAME, lm:MODEL, run:DIR")
    p.add_argument("--scale", default="tiny", help="preset scale of the learner (tiny, smollm2)")
    p.add_argument("--objective", choices=["naive", "spite", "margin"], default="naive",
                   help="the learner's reward: naive its own, spite the target's loss (−Σ of "
                   "the co-players' rewards), margin its lead (own − co-players')")
    p.add_argument("--out", help="run directory (default "
                   "runs/exploit-GAME-targetSPEC[-objectiveOBJ][-OVERRIDES]-sSEED)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    p.set_defaults(func=cmd_exploit)

    p = sub.add_parser("prior", help="probe a model's conditional behaviour (its prior)")
    p.add_argument("model", help="a registered model (e.g. tiny-ipd, tiny-trust-split, "
                   "smollm2-135m, smollm2-135m-ipd) or a local model directory")
    p.add_argument("--game", required=True,
                   choices=[g for g in games if game_entry(g).prior is not None])
    p.add_argument("--games", type=int, default=32, help="games per seat order and probe")
    p.add_argument("--remeasure", action="store_true", help="measure again, replacing the stored")
    p.add_argument("--json", help="also write the numbers here")
    p.set_defaults(func=cmd_prior)

    def protocol_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--style", choices=[s.value for s in Style],
                       help="prompt style (default: the runs' own, full without runs)")
        p.add_argument("--constrain-moves", choices=["on", "off"],
                       help="format-constrained moves (default: as the runs were trained)")

    p = sub.add_parser("tournament", help="Axelrod tournament of IPD agents (league extra)")
    p.add_argument("--game", required=True, choices=["ipd"])
    p.add_argument("--agents", required=True, help="comma-separated agent specs")
    p.add_argument("--axelrod", choices=["classic", "all"], default="classic",
                   help="classic: the strategies of Axelrod's first tournament; all: every "
                   "ordinary strategy of the library")
    p.add_argument("--turns", type=int, default=10, help="turns per match (detente's IPD: 10)")
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    protocol_flags(p)
    p.add_argument("--out", default="tournament-out", help="folder for JSON, CSV and plots")
    p.set_defaults(func=cmd_tournament)

    p = sub.add_parser("league", help="league report: tournament, strategies, exploiters, "
                       "ratings, cross-play, replicator dynamics (league extra)")
    p.add_argument("--game", required=True, choices=games)
    p.add_argument("--agents", required=True, help="comma-separated agent specs")
    p.add_argument("--games", type=int, default=16, help="face-off games per seat order")
    p.add_argument("--seed", type=int, default=0)
    protocol_flags(p)
    p.add_argument("--axelrod", choices=["classic", "all", "none"], default="classic",
                   help="IPD: the Axelrod strategy set of the tournament")
    p.add_argument("--turns", type=int, default=10, help="Axelrod match length")
    p.add_argument("--repetitions", type=int, default=3, help="Axelrod tournament repetitions")
    p.add_argument("--probe-games", type=int, default=8,
                   help="IPD: memory-one probe games per probe and seat")
    p.add_argument("--no-fingerprint", action="store_true", help="IPD: skip the fingerprints")
    p.add_argument("--targets", help="comma-separated specs to train exploiters against")
    p.add_argument("--objectives", default="naive,spite,margin", help="exploiter objectives")
    p.add_argument("--exploit-seeds", default="0,1", help="comma-separated exploiter seeds")
    p.add_argument("--exploit-scale", default="tiny", help="preset scale of the exploiters")
    p.add_argument("--exploit-override", action="append",
                   help="key=value override of the exploiters' config (repeatable)")
    p.add_argument("--exploit-games", type=int, default=16,
                   help="evaluation games per seat of each exploiter against its target")
    p.add_argument("--snapshots", action="append",
                   help="a run directory whose snapshots are rated per iteration (repeatable)")
    p.add_argument("--out", default="league-out", help="folder of league.html, league.json")
    p.set_defaults(func=cmd_league)

    p = sub.add_parser("presets", help="list the shipped presets, or show one resolved")
    p.add_argument("--show", metavar="NAME",
                   help="print the resolved config of preset NAME (or a YAML file), every key")
    p.add_argument("overrides", nargs="*", help="with --show: key.sub=value overrides to apply")
    p.set_defaults(func=cmd_presets)
    for name, command in sub.choices.items():
        command.formatter_class = HelpFormatter
        for action in command._actions:
            if not action.help and action.dest in ARGUMENT_HELP:
                action.help = ARGUMENT_HELP[action.dest]
        epilog = [*(["examples:", *("  " + e for e in EXAMPLES[name])] if name in EXAMPLES else [])]
        if name in ("faceoff", "play", "serve", "train", "exploit", "league"):
            epilog += ["", bots_listing()]
        command.epilog = "\n".join(epilog) or None
    return parser


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs as written; each option's default appended to its help (where the help does
    not already give it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        shown = not (default is None or default is False or default == argparse.SUPPRESS)
        shown = shown and bool(action.option_strings)
        if shown and "default" not in text and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


ARGUMENT_HELP = {
    "game": "the game",
    "seed": "seed of the games and the sampling",
    "seat": "your seat: alice moves first in games with turns",
    "port": "port to listen on",
    "run_dir": "the run directory",
    "repetitions": "repetitions of the tournament",
    "model": "the base model of the runs",
}

EXAMPLES = {
    "train": ["detente train ipd-adalign-tiny", "detente train ipd-naive-tiny train.lr=2e-3 "
              "eval.every=5", "detente train my.yaml --out runs/mine"],
    "faceoff": ["detente faceoff --game ipd --agents run:runs/ipd-adalign-tiny-s0,bot:tit-for-tat "
                "--games 32 --json out.json"],
    "play": ["detente play --game ipd --opponent run:runs/ipd-adalign-tiny-s0",
             "detente play --game trust-split --opponent bot:tit-for-tat --transcript t.jsonl.gz"],
    "resume": ["detente resume runs/ipd-adalign-tiny-s0",
               "detente resume runs/ipd-adalign-tiny-s0 train.iterations=40"],
    "report": ["detente report runs/ipd-adalign-tiny-s0", "detente report t.jsonl.gz"],
    "compare": ["detente compare runs/ipd-naive-tiny-s0 runs/ipd-adalign-tiny-s0"],
    "serve": ["detente serve run:runs/ipd-adalign-tiny-s0 --game ipd --port 8000"],
    "presets": ["detente presets", "detente presets --show ipd-adalign-tiny train.lr=1e-3"],
    "exploit": ["detente exploit --game ipd --target run:runs/ipd-adalign-tiny-s0"],
    "demo": ["detente demo --game ipd --seeds 0-4"],
    "prior": ["detente prior tiny-ipd --game ipd"],
}


def bots_listing() -> str:
    """The bots of each game, as ``bot:NAME`` specs take them."""
    from detente.policies.bots import bot_names

    return "bots (bot:NAME):\n" + "\n".join(
        f"  {game}: {', '.join(bot_names(game))}" for game in game_names()
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("detente")
    except PackageNotFoundError:
        return "unknown"


def quiet_libraries() -> None:
    """The command line shows detente's own output: the libraries' deprecation notices and
    info logs (transformers, peft, torch, TensorBoard) are silenced; errors still show."""
    import logging
    import warnings

    for category in (FutureWarning, DeprecationWarning, UserWarning):
        for module in ("transformers", "peft", "torch", "tensorboard", "accelerate"):
            warnings.filterwarnings("ignore", category=category, module=module)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("transformers", "peft", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries()
    try:
        return args.func(args)
    except (ValueError, RuntimeError, OSError, ImportError) as error:  # one line, no traceback
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"detente: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
