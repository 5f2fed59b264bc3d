"""Agent specs, the same everywhere: ``bot:NAME``, ``human`` (more kinds register here)."""

from __future__ import annotations

from collections.abc import Callable

from detente.policies.base import Policy
from detente.policies.bots import make_bot

AgentBuilder = Callable[[str, str], Policy]  # (game, argument) -> policy
_BUILDERS: dict[str, AgentBuilder] = {"bot": lambda game, name: make_bot(game, name)}


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
