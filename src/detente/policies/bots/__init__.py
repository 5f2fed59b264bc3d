"""Scripted bots per game. ``make_bot(game, name)`` builds one by its canonical name."""

from __future__ import annotations

from detente.policies.bots import commons, dond, ipd, multi_ipd, public_goods, split, trust_split
from detente.policies.bots.base import Bot
from detente.suggest import did_you_mean

_REGISTRY: dict[str, dict[str, type[Bot]]] = {}


def _register(bots: tuple[type[Bot], ...]) -> None:
    for bot in bots:
        _REGISTRY.setdefault(bot.game, {})[bot.bot_name] = bot


_register(ipd.BOTS)
_register(split.BOTS)
_register(dond.BOTS)
_register(trust_split.BOTS)
_register(multi_ipd.BOTS)
_register(public_goods.BOTS)
_register(commons.BOTS)


def bot_names(game: str) -> list[str]:
    return sorted(_REGISTRY.get(game, {}))


def make_bot(game: str, name: str) -> Bot:
    try:
        return _REGISTRY[game][name]()
    except KeyError:
        raise ValueError(
            f"no bot {name!r} for game {game!r}{did_you_mean(name, bot_names(game))}; known: "
            f"{', '.join(bot_names(game)) or 'none'}"
        ) from None


__all__ = ["Bot", "bot_names", "make_bot"]
