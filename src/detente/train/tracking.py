"""Experiment tracking: every metrics line also goes to the backends of ``logging.backends``.

- ``tensorboard`` (the default; the ``tracking`` extra): event files in ``RUN_DIR/tensorboard``
  — each numeric metric a scalar at step = iteration (``eval/BOT/...`` included), the resolved
  config as hyper-parameters (and as text), ``logging.text_games`` games of each iteration as
  text. A resumed run purges the steps it replays, so no iteration is drawn twice.
- ``wandb``: ``wandb.init(project=logging.project, dir=RUN_DIR, config=...)``, resumable (the
  run id is kept in ``RUN_DIR/wandb-id``); ``WANDB_MODE=offline`` keeps it on disk.
- ``trackio``: ``trackio.init(project=..., name=RUN_DIR name, config=...)``; local by default.

``metrics.jsonl`` stays the record; a backend only mirrors it.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from detente.config import RunConfig
from detente.games.base import player_name
from detente.rollout.records import GameRecord


class Tracker(Protocol):
    def log(self, iteration: int, metrics: dict[str, Any], records: Sequence[GameRecord]) -> None:
        """One iteration's metrics line and its games."""

    def close(self) -> None: ...


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric, finite entries of a metrics line (not ``iteration``)."""
    return {
        k: float(v) for k, v in metrics.items()
        if k != "iteration" and isinstance(v, int | float) and not isinstance(v, bool)
        and math.isfinite(v)
    }  # fmt: skip


def flat_config(config: RunConfig) -> dict[str, Any]:
    """The resolved config as ``{dotted.key: value}`` with values TensorBoard's hyper-parameter
    view takes (numbers, strings, booleans; lists and null as text)."""
    out: dict[str, Any] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else k)
        elif isinstance(value, bool | int | float | str):
            out[key] = value
        else:
            out[key] = str(value)

    walk(config.model_dump(mode="json"), "")
    return out


def game_text(record: GameRecord) -> str:
    """A game as plain text: per round each reply (who, kind, text; invalid ones marked) and
    the rewards."""
    lines = [f"game {record.game_id}: " + " vs ".join(s.agent for s in record.seats)]
    for r, rewards in enumerate(record.rewards):
        lines.append(f"round {r + 1}")
        for seat in record.seats:
            for turn in seat.turns:
                if turn.round == r:
                    mark = " (invalid)" if turn.invalid else ""
                    kind = getattr(turn.kind, "value", turn.kind)
                    lines.append(f"  {player_name(seat.player)} {kind}{mark}: {turn.reply}")
        lines.append("  rewards: " + ", ".join(f"{x:g}" for x in rewards))
    return "\n".join(lines)


class TensorBoard:
    def __init__(self, run_dir: Path, config: RunConfig, start: int) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.text_games = config.logging.text_games
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start or None)
        if start == 0:
            for summary in hparams(flat_config(config), {"reward": 0.0}):
                self.writer.file_writer.add_summary(summary)
            from detente.config import dump_config

            self.writer.add_text("config", _markdown_code(dump_config(config)), 0)

    def log(self, iteration: int, metrics: dict[str, Any], records: Sequence[GameRecord]) -> None:
        for key, value in scalars(metrics).items():
            self.writer.add_scalar(key, value, iteration)
        for k, record in enumerate(records[: self.text_games]):
            self.writer.add_text(f"games/{k}", _markdown_code(game_text(record)), iteration)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Wandb:
    def __init__(self, run_dir: Path, config: RunConfig, start: int) -> None:
        import wandb

        self.wandb = wandb
        id_path = run_dir / "wandb-id"
        if not id_path.is_file():
            id_path.write_text(uuid.uuid4().hex[:16])
        self.text_games = config.logging.text_games
        self.run = wandb.init(
            project=config.logging.project, dir=str(run_dir), name=run_dir.name,
            id=id_path.read_text().strip(), resume="allow", config=config.model_dump(mode="json"),
        )  # fmt: skip

    def log(self, iteration: int, metrics: dict[str, Any], records: Sequence[GameRecord]) -> None:
        data: dict[str, Any] = dict(scalars(metrics))
        for k, record in enumerate(records[: self.text_games]):
            data[f"games/{k}"] = self.wandb.Html(f"<pre>{_escape(game_text(record))}</pre>")
        self.run.log(data, step=iteration)

    def close(self) -> None:
        self.run.finish()


class Trackio:
    def __init__(self, run_dir: Path, config: RunConfig, start: int) -> None:
        import trackio

        self.trackio = trackio
        trackio.init(project=config.logging.project, name=run_dir.name,
                     config=config.model_dump(mode="json"), resume="allow")  # fmt: skip

    def log(self, iteration: int, metrics: dict[str, Any], records: Sequence[GameRecord]) -> None:
        self.trackio.log(scalars(metrics), step=iteration)

    def close(self) -> None:
        self.trackio.finish()


BACKENDS: dict[str, tuple[type, str, str]] = {  # name -> (class, module, how to install)
    "tensorboard": (TensorBoard, "tensorboard", "pip install 'detente[tracking]'"),
    "wandb": (Wandb, "wandb", "pip install wandb"),
    "trackio": (Trackio, "trackio", "pip install trackio"),
}


def check_backends(config: RunConfig) -> None:
    """An error naming the install for a backend asked for by name whose package is missing
    (before any work; TensorBoard, the default, only warns, in ``make_trackers``)."""
    for name in config.logging.backends:
        _, module, install = BACKENDS[name]
        if name != "tensorboard" and importlib.util.find_spec(module) is None:
            raise RuntimeError(f"logging.backends has {name}, but {module} is not installed "
                               f"({install})")  # fmt: skip


def make_trackers(config: RunConfig, run_dir: Path, start: int) -> list[Tracker]:
    """The trackers of ``logging.backends`` for a run starting (or resuming) at ``start``.
    TensorBoard without its package is a warning (it is the default); a backend asked for by
    name without its package is an error naming the install."""
    out: list[Tracker] = []
    for name in config.logging.backends:
        cls, module, install = BACKENDS[name]
        if importlib.util.find_spec(module) is None:
            message = f"logging.backends has {name}, but {module} is not installed ({install})"
            if name == "tensorboard":
                print(f"warning: {message}; logging to metrics.jsonl only", file=sys.stderr)
                continue
            raise RuntimeError(message)
        out.append(cls(run_dir, config, start))
    return out


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _markdown_code(text: str) -> str:
    """``text`` shown verbatim in TensorBoard's Markdown text view (indented code block)."""
    return "\n".join("    " + line for line in text.splitlines())
