"""Pure game rules. ``make_game(name, config, seed)`` builds any registered game."""

from __future__ import annotations

from typing import Any

from detente.games.base import (
    ALICE,
    BOB,
    PLAYER_NAMES,
    Event,
    Game,
    GameConfig,
    IllegalAction,
    Kind,
    MessageEvent,
    Phase,
    allocate,
    draw_horizon,
)
from detente.games.commons import Commons
from detente.games.dond import Dond
from detente.games.ipd import IPD
from detente.games.multi_ipd import MultiIPD
from detente.games.public_goods import PublicGoods
from detente.games.split import Split
from detente.games.trust_split import TrustSplit

GAMES: dict[str, type[Game]] = {
    IPD.name: IPD,
    Split.name: Split,
    Dond.name: Dond,
    TrustSplit.name: TrustSplit,
    MultiIPD.name: MultiIPD,
    PublicGoods.name: PublicGoods,
    Commons.name: Commons,
}


def game_type(name: str) -> type[Game]:
    try:
        return GAMES[name]
    except KeyError:
        raise ValueError(f"unknown game {name!r}; known: {', '.join(sorted(GAMES))}") from None


def make_config(name: str, overrides: dict[str, Any] | None = None) -> GameConfig:
    """The game's config with ``overrides`` applied (unknown keys raise, naming the key)."""
    return game_type(name).config_type(**(overrides or {}))


def make_game(name: str, config: GameConfig | None, seed: int) -> Game:
    cls = game_type(name)
    return cls(config if config is not None else cls.config_type(), seed)


__all__ = [
    "ALICE",
    "BOB",
    "GAMES",
    "PLAYER_NAMES",
    "Event",
    "Game",
    "GameConfig",
    "IllegalAction",
    "Kind",
    "MessageEvent",
    "Phase",
    "allocate",
    "draw_horizon",
    "game_type",
    "make_config",
    "make_game",
]
