"""Agent specs, the same everywhere.

``bot:NAME`` (a scripted bot), ``lm:MODEL`` (a base model, no adapter), ``run:RUN_DIR[@ITERATION]``
(a trained adapter: the latest checkpoint, or the pool snapshot or kept checkpoint of that
iteration),
``api:MODEL@BASE_URL[#key=value&...]`` (an OpenAI-compatible API; see ``policies/api.py``),
``human``.
Language-model agents on the same base model share one engine, hence one batch per step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detente.policies.base import Policy
from detente.policies.bots import make_bot

AgentBuilder = Callable[[str, str], Policy]  # (game, argument) -> policy
_BATCHERS: dict[str, Any] = {}  # model name -> LMBatcher (one engine per base model)


def share_batcher(model: str, batcher: Any) -> None:
    """Serve ``lm:``/``run:`` agents on ``model`` from this batcher (e.g. the trainer's engine)."""
    _BATCHERS[model] = batcher


def _batcher(model: str) -> Any:
    from detente.lm.models import load_engine
    from detente.policies.lm import LMBatcher

    if model not in _BATCHERS:
        _BATCHERS[model] = LMBatcher(load_engine(model))
    return _BATCHERS[model]


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


def _run_agent(game: str, argument: str) -> Policy:
    """The adapter of a training run: ``RUN_DIR`` (latest) or ``RUN_DIR@ITERATION``."""
    from detente.config import read_yaml, validate
    from detente.policies.lm import LMPolicy

    run_text, _, iteration = argument.partition("@")
    run_dir = Path(run_text)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ValueError(f"{run_dir} is not a training run (no config.yaml)")
    try:
        run_config = validate(read_yaml(config_path))
    except ValueError as error:
        raise ValueError(f"{config_path}: {error}") from None
    if run_config.game.name != game:
        raise ValueError(f"{run_dir} was trained on {run_config.game.name}, not {game}")
    folder = _run_adapter(run_dir, iteration)
    batcher = _batcher(run_config.model.name)
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
        raise ValueError(
            f"bad agent spec {spec!r}: expected one of "
            + ", ".join(f"{k}:ARG" for k in sorted(_BUILDERS))
            + ", human"
        )
    return _BUILDERS[kind](game, argument)
