"""Pure game rules. ``make_game(name, config, seed)`` builds any registered game
(:mod:`detente.games.registry`: one registration per game)."""

from __future__ import annotations

from typing import Any

from detente.games.base import (
    ALICE,
    BOB,
    PLAYER_NAMES,
    Event,
    Game,
    GameConfig,
    GameInfo,
    IllegalAction,
    Kind,
    MessageEvent,
    Phase,
    allocate,
    draw_horizon,
    player_name,
)
from detente.games.registry import GameEntry, game_entry, game_names, register_game


def game_type(name: str) -> type[Game]:
    """The rules of game ``name``; a one-line error with the known games otherwise."""
    rules = game_entry(name).rules_type()
    if not (isinstance(rules, type) and issubclass(rules, Game)):
        raise TypeError(f"game {name!r} is registered with rules {rules!r}, not a Game")
    return rules


def make_config(name: str, overrides: dict[str, Any] | None = None) -> GameConfig:
    """The game's config with ``overrides`` applied (unknown keys raise, naming the key)."""
    return game_type(name).config_type(**(overrides or {}))


def make_game(name: str, config: GameConfig | None, seed: int) -> Game:
    cls = game_type(name)
    return cls(config if config is not None else cls.config_type(), seed)


__all__ = [
    "ALICE",
    "BOB",
    "PLAYER_NAMES",
    "Event",
    "Game",
    "GameConfig",
    "GameEntry",
    "GameInfo",
    "IllegalAction",
    "Kind",
    "MessageEvent",
    "Phase",
    "allocate",
    "draw_horizon",
    "game_entry",
    "game_names",
    "game_type",
    "make_config",
    "make_game",
    "player_name",
    "register_game",
]
