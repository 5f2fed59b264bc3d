"""Text faces of the games. ``make_protocol(game_name, style)`` builds the registered one."""

from __future__ import annotations

from detente.protocol.base import InvalidReply, Protocol, Style
from detente.protocol.ipd import IPDProtocol

PROTOCOLS: dict[str, type[Protocol]] = {IPDProtocol.game: IPDProtocol}


def make_protocol(game_name: str, style: Style | str = Style.FULL) -> Protocol:
    try:
        return PROTOCOLS[game_name](style)
    except KeyError:
        raise ValueError(f"no protocol for game {game_name!r}") from None


__all__ = ["PROTOCOLS", "InvalidReply", "Protocol", "Style", "make_protocol"]
