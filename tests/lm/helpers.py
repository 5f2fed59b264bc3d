"""Helpers shared by the lm tests: synthetic chats, request builders, teacher forcing."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from detente.lm.engine import Engine
from detente.lm.tiny import build_untrained
from detente.lm.types import GenerationRequest, GenerationResult, SamplingParams

Chat = tuple[dict[str, str], ...]

_WORDS = [
    "I",
    "you",
    "we",
    "will",
    "play",
    "cooperate",
    "defect",
    "trust",
    "split",
    "coins",
    "round",
    "hand",
    "rock",
    "paper",
    "scissors",
]


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def synthetic_chats(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """Short IPD-like and chatty conversations."""
    rng = random.Random(seed)
    chats = []
    for _ in range(n):
        chat = [{"role": "system", "content": "You play a game with Bob."}]
        for r in range(1, rng.randint(2, 4) + 1):
            other = rng.choice(["<A>", "<B>"])
            chat.append(user(f"Round {r}. Bob played {other}. Your move?"))
            if rng.random() < 0.7:
                chat.append(assistant(rng.choice(["<A>", "<B>"])))
            else:
                chat.append(assistant(" ".join(rng.choices(_WORDS, k=rng.randint(2, 6))) + "."))
        chats.append(chat)
    return chats


def make_engine(tokenizer, state: dict[str, torch.Tensor], **kwargs) -> Engine:
    """A fresh engine over the tiny model with weights ``state``."""
    model = build_untrained(tokenizer, hidden=64, layers=2, heads=4, seed=0)
    model.load_state_dict(state)
    return Engine(model, tokenizer, **kwargs)


def perturb_adapter(engine: Engine, name: str, seed: int, std: float = 0.2) -> None:
    """Give adapter ``name`` random non-zero weights (a fresh LoRA equals the base)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in engine.parameters_of(name):
            param.copy_(torch.randn(param.shape, generator=generator) * std)


def request(
    session: str,
    messages: Sequence[dict[str, str]],
    adapter: str | None = None,
    seed: int = 0,
    max_new_tokens: int = 12,
    temperature: float = 1.0,
    top_p: float = 1.0,
    allowed: tuple[str, ...] | None = None,
) -> GenerationRequest:
    return GenerationRequest(
        session_id=session,
        messages=tuple(messages),
        adapter=adapter,
        seed=seed,
        sampling=SamplingParams(temperature, top_p, max_new_tokens),
        allowed_replies=allowed,
    )


def extend(messages: Sequence[dict[str, str]], result: GenerationResult, text: str) -> Chat:
    """The chat after ``result``'s reply and a new user message."""
    return (*messages, assistant(result.text), user(text))


def teacher_logprobs(
    engine: Engine, sequence: Sequence[int], adapter: str | None, temperature: float = 1.0
) -> list[float]:
    """log p(sequence[t] | sequence[:t]) for t ≥ 1, by one full forward without a cache."""
    with torch.no_grad():
        scores = engine.score(torch.tensor([list(sequence)]), None, adapter, temperature)
    return [0.0, *scores.logprobs[0].tolist()]
