"""Fixtures: a tokenizer trained on synthetic chats and a tiny Llama briefly trained on them.

The brief training (a few seconds) gives the model context-dependent, peaked next-token
distributions and teaches it to end turns with ``<|im_end|>``, so equivalence tests are
sensitive to position or cache mistakes and replies do finish (and sometimes contain special
tokens, an edge case worth covering).
"""

from __future__ import annotations

import os

import pytest
import torch

from detente.lm.engine import Engine
from detente.lm.tiny import build_untrained
from detente.lm.tokenizer import train_tokenizer

from .helpers import make_engine, synthetic_chats

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tokenizer():
    texts = []
    for chat in synthetic_chats(300):
        texts.extend(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in chat)
    return train_tokenizer(texts, vocab_size=400)


@pytest.fixture(scope="session")
def trained_state(tokenizer) -> dict[str, torch.Tensor]:
    """Weights of a tiny Llama trained for a few steps on the synthetic chats."""
    model = build_untrained(tokenizer, hidden=64, layers=2, heads=4, seed=0)
    rows = [
        tokenizer.encode(tokenizer.apply_chat_template(c, tokenize=False), add_special_tokens=False)
        for c in synthetic_chats(256, seed=1)
    ]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        batch = torch.randint(len(rows), (16,), generator=generator)
        loss = model(input_ids=ids[batch], attention_mask=mask[batch], labels=labels[batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture
def engine(tokenizer, trained_state) -> Engine:
    """A fresh engine (no adapters, no sessions) over the trained tiny model."""
    return make_engine(tokenizer, trained_state)
