"""The embedded models' cache key covers the whole warm-start recipe."""

from __future__ import annotations

from detente.recipes import warmstart
from detente.recipes.embedded import _cache_name


def test_cache_name_changes_with_the_persona_mix(monkeypatch) -> None:
    before = _cache_name("tiny", warmstart.TINY)
    assert _cache_name("tiny", warmstart.TINY) == before
    ipd = {**warmstart.PERSONAS["ipd"], "always-cooperate": 0.5}
    monkeypatch.setitem(warmstart.PERSONAS, "ipd", ipd)
    assert _cache_name("tiny", warmstart.TINY) != before
    monkeypatch.undo()
    monkeypatch.setitem(warmstart.PERSONA_ROUNDS, "trust-split", 10)
    assert _cache_name("tiny", warmstart.TINY) != before
