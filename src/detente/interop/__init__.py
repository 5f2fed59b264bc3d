"""detente's games in other libraries' interfaces.

``detente.interop.pettingzoo``: every registered game as a PettingZoo environment (the
``pettingzoo`` extra, ``pip install 'detente[pettingzoo]'``). Nothing here is imported by the
rest of detente, and importing this package imports no optional dependency: ``make_env`` and
``make_parallel_env`` load PettingZoo on first call.
"""

from __future__ import annotations

from typing import Any


def make_env(game: str, mode: str = "text", **options: Any) -> Any:
    """The game as a PettingZoo ``AECEnv`` (see :func:`detente.interop.pettingzoo.make_env`)."""
    from detente.interop.pettingzoo import make_env as make

    return make(game, mode, **options)


def make_parallel_env(game: str, mode: str = "text", **options: Any) -> Any:
    """The game as a PettingZoo ``ParallelEnv`` (see
    :func:`detente.interop.pettingzoo.make_parallel_env`)."""
    from detente.interop.pettingzoo import make_parallel_env as make

    return make(game, mode, **options)


__all__ = ["make_env", "make_parallel_env"]
