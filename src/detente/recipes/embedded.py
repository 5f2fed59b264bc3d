"""The embedded models: built on first use, then cached.

``tiny`` covers the two-player games; ``tiny-ipd`` and ``tiny-trust-split`` are warm-started on
one demo game each, ``tiny-public-goods`` and ``tiny-commons`` on one N-player game each (the CPU
presets of those games use them); ``tiny-test`` is the test suite's.

The cache folder name carries the spec and recipe version, so a change rebuilds instead of
loading a stale model. :data:`MODELS` is declared to :mod:`detente.lm.models` as the
``detente.models`` entry point ``embedded`` (``pyproject.toml``): ``load_model("tiny")`` finds
them without importing this module first.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

from detente.lm.models import ModelAndTokenizer, ModelBuilder, load_cached_dir, save_atomically
from detente.recipes.warmstart import (
    TINY,
    TINY_COMMONS,
    TINY_IPD,
    TINY_PUBLIC_GOODS,
    TINY_TEST,
    TINY_TRUST_SPLIT,
    TinySpec,
    build_tiny,
    recipe_key,
)


def _cache_name(name: str, spec: TinySpec) -> str:
    key = hashlib.sha1(repr((asdict(spec), recipe_key(spec))).encode()).hexdigest()[:10]
    return f"{name}-{key}"


def embedded_directory(name: str, cache: Path) -> Path | None:
    """The cache folder of an embedded model (``None`` for other names); it exists once built."""
    spec = _SPECS.get(name)
    return None if spec is None else cache / _cache_name(name, spec)


def _builder(name: str, spec: TinySpec) -> ModelBuilder:
    def build(cache: Path) -> ModelAndTokenizer:
        target = cache / _cache_name(name, spec)
        if not target.is_dir():
            model, tokenizer = build_tiny(spec)
            save_atomically(model, tokenizer, target)
        return load_cached_dir(target)

    return build


_SPECS = {
    "tiny": TINY,
    "tiny-ipd": TINY_IPD,
    "tiny-trust-split": TINY_TRUST_SPLIT,
    "tiny-public-goods": TINY_PUBLIC_GOODS,
    "tiny-commons": TINY_COMMONS,
    "tiny-test": TINY_TEST,
}
MODELS: dict[str, ModelBuilder] = {name: _builder(name, spec) for name, spec in _SPECS.items()}
