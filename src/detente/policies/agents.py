"""Agent specs, the same everywhere.

``bot:NAME`` (a scripted bot), ``lm:MODEL`` (a base model, no adapter), ``run:RUN_DIR[@ITERATION]``
(a trained adapter: the latest checkpoint, or the pool snapshot of that iteration),
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


def _run_agent(game: str, argument: str) -> Policy:
    """The adapter of a training run: ``RUN_DIR`` (latest) or ``RUN_DIR@ITERATION`` (pool)."""
    import yaml

    from detente.learn.checkpoint import latest_checkpoint
    from detente.policies.lm import LMPolicy

    run_text, _, iteration = argument.partition("@")
    run_dir = Path(run_text)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ValueError(f"{run_dir} is not a training run (no config.yaml)")
    run_config = yaml.safe_load(config_path.read_text())
    if run_config["game"]["name"] != game:
        raise ValueError(f"{run_dir} was trained on {run_config['game']['name']}, not {game}")
    if iteration:
        folder = run_dir / "pool" / f"pool-{int(iteration):06d}"
    else:
        checkpoint = latest_checkpoint(run_dir)
        folder = checkpoint / "adapter" if checkpoint else None
    if folder is None or not folder.is_dir():
        raise ValueError(f"no adapter for {argument!r} (looked for {folder})")
    batcher = _batcher(run_config["model"]["name"])
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
