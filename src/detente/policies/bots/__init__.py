"""Scripted bots per game. ``make_bot(game, name)`` builds one by its canonical name (the bots
of a game come with its registration, :mod:`detente.games.registry`)."""

from __future__ import annotations

from detente.games.registry import game_entry
from detente.policies.bots.base import Bot
from detente.suggest import did_you_mean


def _bots(game: str) -> dict[str, type[Bot]]:
    return {bot.bot_name: bot for bot in game_entry(game).bot_types()}


def bot_names(game: str) -> list[str]:
    return sorted(_bots(game))


def make_bot(game: str, name: str) -> Bot:
    bots = _bots(game)
    if name not in bots:
        names = sorted(bots)
        raise ValueError(
            f"no bot {name!r} for game {game!r}{did_you_mean(name, names)}; known: "
            f"{', '.join(names) or 'none'}"
        )
    return bots[name]()


__all__ = ["Bot", "bot_names", "make_bot"]
