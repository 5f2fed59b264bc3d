"""The warm start fits stochastic personas' distributions (soft targets), checked by brute force."""

from __future__ import annotations

import math

import pytest
import torch

from detente.lm.chat import ChatFormat
from detente.lm.models import load_model
from detente.recipes.warmstart import (
    PersonaChat,
    conversation_tokens,
    persona_conversations,
    soft_targets,
    warm_start_loss,
)


@pytest.fixture(scope="module")
def chat() -> ChatFormat:
    _, tokenizer = load_model("tiny-test")
    return ChatFormat(tokenizer)


def test_ipd_persona_chats_carry_the_forgiving_distribution_per_move() -> None:
    chats = persona_conversations(["ipd"], 6, seed=0)["ipd"]
    for persona in chats:
        replies = [m["content"] for m in persona.messages if m["role"] == "assistant"]
        assert len(replies) == len(persona.distributions) == 10
        for reply, distribution in zip(replies, persona.distributions, strict=True):
            assert set(distribution) == {"<A>", "<B>"} and reply in distribution
            assert distribution["<A>"] in (pytest.approx(0.95), pytest.approx(0.6))


def test_soft_targets_sit_where_the_alternatives_differ(chat) -> None:
    persona = persona_conversations(["ipd", "trust-split"], 4, seed=1)
    for chats in persona.values():
        for one in chats:
            ids, target = conversation_tokens(chat, one.messages)
            soft = soft_targets(chat, ids, target, one)
            stochastic = [d for d in one.distributions if d and len(d) > 1]
            assert len(soft) == len(stochastic)
            for (position, probabilities), distribution in zip(soft, stochastic, strict=True):
                assert target[position] == 1
                assert ids[position] in probabilities  # the drawn reply is one alternative
                assert math.isclose(sum(probabilities.values()), 1.0)
                assert sorted(probabilities.values()) == pytest.approx(sorted(distribution.values()))


def test_soft_targets_reject_a_reply_count_mismatch(chat) -> None:
    one = persona_conversations(["ipd"], 1, seed=0)["ipd"][0]
    ids, target = conversation_tokens(chat, one.messages)
    with pytest.raises(ValueError, match="replies"):
        soft_targets(chat, ids, target, PersonaChat(one.messages, one.distributions[:-1]))


def test_warm_start_loss_equals_a_brute_force_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 5, generator=generator)
    labels = torch.tensor([[-100, 1, 2, -100, 3, 4], [-100, -100, 0, 1, -100, -100]])
    soft = [[(2, {2: 0.7, 3: 0.3})], [(3, {1: 0.25, 4: 0.75})]]
    loss = warm_start_loss(logits, labels, soft)
    logp = torch.log_softmax(logits, dim=-1)
    terms = []
    for row in range(2):
        soft_here = dict(soft[row])
        for k in range(1, 6):
            if k in soft_here:
                terms.append(-sum(q * logp[row, k - 1, v] for v, q in soft_here[k].items()))
            elif labels[row, k] != -100:
                terms.append(-logp[row, k - 1, labels[row, k]])
    assert loss.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-6)


def test_the_opening_of_a_persona_chat_is_its_first_round():
    from detente.recipes.warmstart import persona_conversations

    (whole,) = persona_conversations(("trust-split",), 1, 0)["trust-split"]
    opening = whole.opening()
    assert set(whole.rounds) == {0, 1, 2, 3} and set(opening.rounds) == {0}
    replies = [m for m in opening.messages if m["role"] == "assistant"]
    assert len(replies) == len(opening.distributions) == 2  # the message, then the claim
    assert opening.messages == whole.messages[: len(opening.messages)]
    assert opening.messages[-1]["role"] == "assistant" and "proposal" in replies[-1]["content"]
