"""Text faces of the games. ``make_protocol(game_name, style)`` builds the registered one."""

from __future__ import annotations

from detente.games.base import GameConfig
from detente.games.registry import game_entry
from detente.protocol.base import InvalidReply, Protocol, Style


def protocol_type(game_name: str) -> type[Protocol]:
    """The protocol class registered for the game."""
    protocol = game_entry(game_name).protocol_type()
    if not (isinstance(protocol, type) and issubclass(protocol, Protocol)):
        raise TypeError(f"game {game_name!r} is registered with protocol {protocol!r}")
    return protocol


def make_protocol(
    game_name: str, style: Style | str = Style.FULL, config: GameConfig | None = None
) -> Protocol:
    """The game's protocol; ``config`` (the game's options) sets ranges such as coin counts."""
    return protocol_type(game_name).for_config(style, config)


__all__ = ["InvalidReply", "Protocol", "Style", "make_protocol", "protocol_type"]
