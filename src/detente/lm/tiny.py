"""An untrained small Llama for a given tokenizer, initialised deterministically."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase


def build_untrained(
    tokenizer: PreTrainedTokenizerBase,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
    kv_heads: int | None = None,
    max_positions: int = 4096,
    init_std: float = 0.02,
) -> LlamaForCausalLM:
    """A Llama with tied embeddings sized for ``tokenizer`` (MLP width 4 × ``hidden``); the same
    arguments give the same weights. ``kv_heads`` < ``heads`` gives grouped-query attention.
    Float32, eval mode."""
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        max_position_embeddings=max_positions,
        initializer_range=init_std,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.float().eval()
