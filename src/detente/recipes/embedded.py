"""The embedded models: built on first use, then cached.

``tiny`` covers the two-player games; ``tiny-ipd`` and ``tiny-trust-split`` are warm-started on
one demo game each, ``tiny-public-goods`` and ``tiny-commons`` on one N-player game each (the CPU
presets of those games use them); ``tiny-test`` is the test suite's. ``smollm2-135m-ipd`` is
SmolLM2-135M-Instruct with a LoRA warm start on the IPD's forgiving persona, merged
(:mod:`detente.recipes.persona_lora`; the IPD's ``-smollm2`` presets train on it).

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
from detente.recipes.persona_lora import SMOLLM2_IPD, LoraSpec, build_persona_lora, lora_recipe_key
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


def _cache_name(name: str, spec: TinySpec | LoraSpec) -> str:
    recipe = recipe_key(spec) if isinstance(spec, TinySpec) else lora_recipe_key(spec)
    key = hashlib.sha1(repr((asdict(spec), recipe)).encode()).hexdigest()[:10]
    return f"{name}-{key}"


def embedded_directory(name: str, cache: Path) -> Path | None:
    """The cache folder of an embedded model (``None`` for other names); it exists once built."""
    spec = _SPECS.get(name)
    return None if spec is None else cache / _cache_name(name, spec)


def _builder(name: str, spec: TinySpec | LoraSpec) -> ModelBuilder:
    def build(cache: Path) -> ModelAndTokenizer:
        target = cache / _cache_name(name, spec)
        if not target.is_dir():
            if isinstance(spec, TinySpec):
                model, tokenizer = build_tiny(spec)
            else:
                model, tokenizer = build_persona_lora(spec, cache)
            save_atomically(model, tokenizer, target)
        return load_cached_dir(target)

    return build


_SPECS: dict[str, TinySpec | LoraSpec] = {
    "tiny": TINY,
    "tiny-ipd": TINY_IPD,
    "tiny-trust-split": TINY_TRUST_SPLIT,
    "tiny-public-goods": TINY_PUBLIC_GOODS,
    "tiny-commons": TINY_COMMONS,
    "tiny-test": TINY_TEST,
    "smollm2-135m-ipd": SMOLLM2_IPD,
}
MODELS: dict[str, ModelBuilder] = {name: _builder(name, spec) for name, spec in _SPECS.items()}
