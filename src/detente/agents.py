"""Agent specs, the same everywhere.

``bot:NAME`` (a scripted bot), ``lm:MODEL`` (a base model, no adapter), ``run:RUN_DIR[@ITERATION]``
(a trained adapter: the latest checkpoint, or the pool snapshot or kept checkpoint of that
iteration),
``api:MODEL@BASE_URL[#key=value&...]`` (an OpenAI-compatible API; see ``policies/api.py``),
``human``.
Language-model agents on the same base model share one engine, hence one batch per step.

A ``run:`` agent plays as it was trained: it samples with the run's ``sampling`` settings, and
``as_trained`` gives the prompt style, move constraint and game options its run used, which
``faceoff``, ``play`` and ``serve`` take unless a flag says otherwise (and then say so).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detente.policies.base import Policy
from detente.policies.bots import make_bot
from detente.suggest import did_you_mean

AgentBuilder = Callable[[str, str], Policy]  # (game, argument) -> policy
_BATCHERS: dict[str, Any] = {}  # model name -> LMBatcher (one engine per base model)


def share_batcher(model: str, batcher: Any) -> None:
    """Serve ``lm:``/``run:`` agents on ``model`` from this batcher (e.g. the trainer's engine)."""
    _BATCHERS[model] = batcher


def _batcher(model: str, sampling: Any = None) -> Any:
    """The batcher of ``model`` (one engine per base model); with ``sampling`` (a config's
    ``SamplingSection``), one over the same engine that samples so."""
    from detente.games.base import Kind
    from detente.lm.models import load_engine
    from detente.lm.types import SamplingParams
    from detente.policies.lm import LMBatcher

    if model not in _BATCHERS:
        _BATCHERS[model] = LMBatcher(load_engine(model))
    if sampling is None:
        return _BATCHERS[model]
    engine = _BATCHERS[model].engine  # the current one (share_batcher may have replaced it)
    key = f"{model}|{id(engine)}|{sampling.model_dump_json()}"
    if key not in _BATCHERS:
        _BATCHERS[key] = LMBatcher.with_sampling(engine, {
            Kind.MESSAGE: SamplingParams(sampling.temperature, sampling.top_p,
                                         sampling.max_message_tokens),
            Kind.MOVE: SamplingParams(sampling.temperature, sampling.top_p,
                                      sampling.max_move_tokens),
        })  # fmt: skip
    return _BATCHERS[key]


def _lm_agent(game: str, model: str) -> Policy:
    from detente.policies.lm import LMPolicy

    return LMPolicy(_batcher(model), None, f"lm:{model}")


def run_adapters(run_dir: Path) -> dict[int, Path]:
    """Adapter folders of a run by iteration: the kept checkpoints and the pool snapshots."""
    digits = "[0-9]" * 6
    kept = {
        int(folder.parent.name.removeprefix("iter-")): folder
        for folder in run_dir.glob(f"checkpoints/iter-{digits}/adapter")
    }
    pool = {
        int(folder.name.removeprefix("pool-")): folder
        for folder in run_dir.glob(f"pool/pool-{digits}")
    }
    return {**kept, **pool}


def _run_adapter(run_dir: Path, iteration: str) -> Path:
    """The adapter folder of ``iteration`` (``""``: the latest checkpoint), or a clear error."""
    from detente.learn.checkpoint import latest_checkpoint

    available = run_adapters(run_dir)
    listing = ", ".join(map(str, sorted(available))) or "none"
    if not iteration:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise ValueError(f"{run_dir} has no checkpoint yet (saved iterations: {listing})")
        return checkpoint / "adapter"
    if not iteration.isdigit():
        raise ValueError(f"bad iteration {iteration!r} in run:{run_dir}@ITERATION (a number)")
    if int(iteration) not in available:
        raise ValueError(
            f"{run_dir} has no adapter of iteration {int(iteration)}; available: {listing}"
        )
    return available[int(iteration)]


def run_config_of(run_dir: Path) -> Any:
    """The validated ``config.yaml`` of a run directory, or a one-line error naming it."""
    from detente.config import read_yaml, validate

    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        if not run_dir.exists():
            raise ValueError(f"{run_dir}: no such run directory")
        raise ValueError(f"{run_dir} is not a training run (no config.yaml)")
    try:
        return validate(read_yaml(config_path))
    except ValueError as error:
        raise ValueError(f"{config_path}: {error}") from None


@dataclass(frozen=True)
class PlaySettings:
    """How games are put to the agents: prompt style, moves format-constrained from the first
    try, the game's options; ``notes`` say where they came from (for the terminal)."""

    style: str
    constrain_moves: bool
    options: dict[str, Any]
    notes: tuple[str, ...] = ()


def as_trained(
    specs: Sequence[str], style: str | None = None, constrain_moves: bool | None = None
) -> PlaySettings:
    """The settings the ``run:`` agents among ``specs`` were trained with (style, constrained
    moves, game options); ``style`` / ``constrain_moves`` (flags) override them, with a note
    where they differ from a run's. Without runs: the full style, unconstrained, default game.
    Runs trained differently need the flags (a one-line error otherwise): one game has one
    protocol."""
    trained: dict[str, tuple[str, bool, str]] = {}
    for spec in specs:
        kind, _, argument = spec.partition(":")
        if kind == "run":
            config = run_config_of(Path(argument.partition("@")[0]))
            trained[spec] = (config.game.style.value, config.invalid.constrain_moves,
                             json.dumps(config.game.options, sort_keys=True))  # fmt: skip
    kinds = set(trained.values())
    if not kinds:
        return PlaySettings(style or "full", bool(constrain_moves), {})
    if len({(s, c) for s, c, _ in kinds}) > 1 and (style is None or constrain_moves is None):
        listing = "; ".join(f"{k}: style {s}, constrained moves {'on' if c else 'off'}"
                            for k, (s, c, _) in trained.items())  # fmt: skip
        raise ValueError(f"the runs were trained differently ({listing}): give --style and "
                         "--constrain-moves")  # fmt: skip
    run_style, run_constrain, _ = next(iter(kinds))
    options = {o for _, _, o in kinds}
    notes = []
    chosen_style = style or run_style
    chosen_constrain = run_constrain if constrain_moves is None else constrain_moves
    names = ", ".join(trained)
    if style is None and constrain_moves is None:
        notes.append(f"style {chosen_style}, constrained moves "
                     f"{'on' if chosen_constrain else 'off'}: as {names} trained (override with "
                     "--style, --constrain-moves)")  # fmt: skip
    for spec, (s, c, _) in trained.items():
        if style is not None and style != s:
            notes.append(f"note: --style {style}, but {spec} was trained with {s}")
        if constrain_moves is not None and constrain_moves != c:
            notes.append(f"note: --constrain-moves {'on' if constrain_moves else 'off'}, but "
                         f"{spec} was trained with it {'on' if c else 'off'}")  # fmt: skip
    if len(options) > 1:
        notes.append("note: the runs were trained with different game options; playing the "
                     "game's defaults")  # fmt: skip
    chosen_options = json.loads(options.pop()) if len(options) == 1 else {}
    return PlaySettings(chosen_style, chosen_constrain, chosen_options, tuple(notes))


def _run_agent(game: str, argument: str) -> Policy:
    """The adapter of a training run: ``RUN_DIR`` (latest) or ``RUN_DIR@ITERATION``, sampling
    with the run's ``sampling`` settings."""
    from detente.policies.lm import LMPolicy

    run_text, _, iteration = argument.partition("@")
    run_dir = Path(run_text)
    run_config = run_config_of(run_dir)
    if run_config.game.name != game:
        raise ValueError(f"{run_dir} was trained on {run_config.game.name}, not {game}")
    folder = _run_adapter(run_dir, iteration)
    batcher = _batcher(run_config.model.name, run_config.sampling)
    adapter = "run_" + hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
    if adapter not in batcher.engine.adapter_names():
        batcher.engine.load_adapter(adapter, folder)
    return LMPolicy(batcher, adapter, f"run:{argument}")


def _api_agent(game: str, argument: str) -> Policy:
    from detente.policies.api import ApiPolicy

    return ApiPolicy.from_spec(argument)


_BUILDERS: dict[str, AgentBuilder] = {
    "bot": lambda game, name: make_bot(game, name),
    "lm": _lm_agent,
    "run": _run_agent,
    "api": _api_agent,
}


def register_agent_kind(kind: str, builder: AgentBuilder) -> None:
    """Make ``KIND:ARG`` specs build policies with ``builder(game, ARG)``."""
    _BUILDERS[kind] = builder


def make_agent(spec: str, game: str) -> Policy:
    """Build the policy named by ``spec`` for ``game``."""
    kind, _, argument = spec.partition(":")
    if kind == "human" and not argument:
        from detente.policies.human import HumanPolicy

        return HumanPolicy()
    if kind not in _BUILDERS or not argument:
        close = did_you_mean(kind, [*_BUILDERS, "human"])
        hint = close.replace("?)", f":{argument}?)") if close and argument else close
        raise ValueError(
            f"bad agent spec {spec!r}{hint}: expected one of "
            + ", ".join(f"{k}:ARG" for k in sorted(_BUILDERS))
            + ", human"
        )
    return _BUILDERS[kind](game, argument)
