"""Text faces of the games. ``make_protocol(game_name, style)`` builds the registered one."""

from __future__ import annotations

from detente.games.base import GameConfig
from detente.protocol.base import InvalidReply, Protocol, Style
from detente.protocol.commons import CommonsProtocol
from detente.protocol.dond import DondProtocol
from detente.protocol.ipd import IPDProtocol
from detente.protocol.multi_ipd import MultiIPDProtocol
from detente.protocol.public_goods import PublicGoodsProtocol
from detente.protocol.split import SplitProtocol
from detente.protocol.trust_split import TrustSplitProtocol

PROTOCOLS: dict[str, type[Protocol]] = {
    IPDProtocol.game: IPDProtocol,
    SplitProtocol.game: SplitProtocol,
    DondProtocol.game: DondProtocol,
    TrustSplitProtocol.game: TrustSplitProtocol,
    MultiIPDProtocol.game: MultiIPDProtocol,
    PublicGoodsProtocol.game: PublicGoodsProtocol,
    CommonsProtocol.game: CommonsProtocol,
}


def make_protocol(
    game_name: str, style: Style | str = Style.FULL, config: GameConfig | None = None
) -> Protocol:
    """The game's protocol; ``config`` (the game's options) sets ranges such as coin counts."""
    if game_name not in PROTOCOLS:
        raise ValueError(f"no protocol for game {game_name!r}")
    return PROTOCOLS[game_name].for_config(style, config)


__all__ = ["PROTOCOLS", "InvalidReply", "Protocol", "Style", "make_protocol"]
