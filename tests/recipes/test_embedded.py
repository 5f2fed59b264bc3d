"""The embedded models' cache key covers the whole warm-start recipe."""

from __future__ import annotations

from dataclasses import replace

from detente.games.registry import game_entry, register_game
from detente.recipes import warmstart
from detente.recipes.embedded import _cache_name


def test_cache_name_changes_with_the_persona_mix_of_its_games_only(monkeypatch) -> None:
    before = _cache_name("tiny", warmstart.TINY)
    ipd_before = _cache_name("tiny-ipd", warmstart.TINY_IPD)
    assert _cache_name("tiny", warmstart.TINY) == before
    entry = game_entry("trust-split")
    mix = {**entry.personas, "greedy": 0.5}
    register_game(replace(entry, personas=mix), replace=True)
    try:
        assert _cache_name("tiny", warmstart.TINY) != before
        assert _cache_name("tiny-ipd", warmstart.TINY_IPD) == ipd_before  # not its game
    finally:
        register_game(entry, replace=True)
    assert _cache_name("tiny", warmstart.TINY) == before
    monkeypatch.setitem(warmstart.PERSONA_ROUNDS, "trust-split", 10)
    assert _cache_name("tiny", warmstart.TINY) != before


def test_cache_name_changes_with_the_text_of_the_persona_chats(monkeypatch) -> None:
    """A changed prompt (here the compact reminder before a claim) changes the training data,
    hence the model: a model built on the old text is not reused."""
    from detente.protocol.trust_split import TrustSplitProtocol

    spec = replace(warmstart.TINY_TEST, games=("trust-split",))
    before = _cache_name("tiny-test", spec)
    reminder = TrustSplitProtocol.reminder
    monkeypatch.setattr(
        TrustSplitProtocol, "reminder", lambda self, *a: reminder(self, *a) + " (new)"
    )
    warmstart.data_digest.cache_clear()
    try:
        assert _cache_name("tiny-test", spec) != before
    finally:
        monkeypatch.undo()
        warmstart.data_digest.cache_clear()
    assert _cache_name("tiny-test", spec) == before
