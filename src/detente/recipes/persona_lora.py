"""A pretrained model's prior shaped on purpose: a LoRA warm start on persona games, merged.

The same persona data and loss as the ``tiny`` models (:mod:`detente.recipes.warmstart`), in the
style the model's presets play (SmolLM2: full prompts), fitted by a LoRA adapter on every
linear layer; the adapter is then merged into the weights, so the result is an ordinary model
(its own RL adapters start from it, and the KL term anchors to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

from detente.lm.chat import ChatFormat
from detente.lm.models import ModelAndTokenizer, load_model
from detente.protocol import Style
from detente.recipes.warmstart import (
    RECIPE_VERSION,
    data_digest,
    persona_conversations,
    personas,
    supervised_warm_start,
)


@dataclass(frozen=True)
class LoraSpec:
    """A registered base model, the persona games to fit and the warm start's budget."""

    base: str
    games: tuple[str, ...]
    games_per_game: int
    rounds: int  # rounds of each persona game (the conditional needs only the last one)
    steps: int
    batch: int
    lr: float
    r: int = 8
    alpha: int = 16
    style: Style = Style.FULL
    seed: int = 0


# SmolLM2-135M-Instruct shaped to the forgiving reciprocator of the IPD (bot:forgiving), in the
# full prompts of the ``-smollm2`` presets; 5-round games keep a step near 2,800 tokens.
SMOLLM2_IPD = LoraSpec(
    base="smollm2-135m", games=("ipd",), games_per_game=240, rounds=5, steps=60, batch=8, lr=1e-3
)


def lora_recipe_key(spec: LoraSpec) -> str:
    """What besides ``spec`` decides the result: the persona mixes, the chats, the recipe."""
    mixes = {game: personas(game) for game in spec.games}
    data = data_digest(spec.games, spec.games_per_game, spec.seed, spec.style, spec.rounds)
    return repr((RECIPE_VERSION, mixes, data))


def build_persona_lora(spec: LoraSpec, cache: Path, progress: bool = True) -> ModelAndTokenizer:
    """``spec.base`` (loaded through ``cache``) with a LoRA adapter fitted to the persona chats,
    merged into the weights. The adapter's initialisation is drawn from ``spec.seed``."""
    model, tokenizer = load_model(spec.base, cache)
    config = LoraConfig(
        r=spec.r, lora_alpha=spec.alpha, lora_dropout=0.0, target_modules="all-linear"
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        wrapped = get_peft_model(model, config)
    conversations = persona_conversations(
        spec.games, spec.games_per_game, spec.seed, spec.style, spec.rounds
    )
    supervised_warm_start(
        wrapped, ChatFormat(tokenizer), conversations, spec, progress, head_at_targets=True
    )
    return wrapped.merge_and_unload().eval(), tokenizer
