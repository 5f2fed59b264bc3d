"""The LoRA persona warm start of a pretrained model, and the loss with the head at targets only."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from detente.lm.chat import ChatFormat
from detente.lm.models import load_model
from detente.protocol import Style
from detente.recipes import warmstart
from detente.recipes.embedded import MODELS, _cache_name
from detente.recipes.persona_lora import SMOLLM2_IPD, LoraSpec, build_persona_lora
from detente.recipes.warmstart import (
    conversation_tokens,
    persona_conversations,
    soft_targets,
    warm_start_loss,
)


def test_the_head_at_targets_only_gives_the_loss_and_gradient_of_the_whole_logits() -> None:
    generator = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(3, 7, bias=False)
    states = torch.randn(2, 6, 3, generator=generator, requires_grad=True)
    labels = torch.tensor([[-100, 1, 2, -100, 3, 4], [-100, -100, 0, 6, -100, -100]])
    soft = [[(2, {2: 0.7, 3: 0.3})], [(3, {1: 0.25, 6: 0.75})]]
    at_targets = warm_start_loss(states, labels, soft, head)
    grads = torch.autograd.grad(at_targets, [states, head.weight])
    whole = warm_start_loss(head(states), labels, soft)
    whole_grads = torch.autograd.grad(whole, [states, head.weight])
    assert at_targets.item() == pytest.approx(whole.item(), rel=1e-6)
    for a, b in zip(grads, whole_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_a_soft_target_must_sit_on_a_target_position() -> None:
    logits = torch.zeros(1, 4, 5)
    labels = torch.tensor([[-100, 1, -100, 2]])
    with pytest.raises(ValueError, match=r"soft target at \(0, 2\)"):
        warm_start_loss(logits, labels, [[(2, {1: 0.5, 2: 0.5})]])


def test_persona_chats_follow_the_style_and_rounds_asked_for() -> None:
    full = persona_conversations(("ipd",), 2, 0, Style.FULL, rounds=3)["ipd"]
    compact = persona_conversations(("ipd",), 2, 0)["ipd"]
    assert all(set(chat.rounds) == {0, 1, 2} for chat in full)
    assert "Reply with exactly <A> or <B>" in full[0].messages[0]["content"]
    assert full[0].messages[0]["content"] != compact[0].messages[0]["content"]
    assert warmstart.data_digest(("ipd",), 2, 0, Style.FULL, 3) != warmstart.data_digest(
        ("ipd",), 2, 0
    )


def _persona_loss(model: torch.nn.Module, chat: ChatFormat, spec: LoraSpec) -> float:
    """Teacher-forced warm-start loss of ``model`` on 16 held-out persona chats."""
    held_out = persona_conversations(spec.games, 16, spec.seed + 1, spec.style, spec.rounds)
    losses = []
    with torch.no_grad():
        for persona in held_out[spec.games[0]]:
            ids, target = conversation_tokens(chat, persona.messages)
            labels = torch.where(torch.tensor(target, dtype=torch.bool), torch.tensor(ids), -100)
            logits = model(input_ids=torch.tensor([ids])).logits
            soft = [soft_targets(chat, ids, target, persona)]
            losses.append(warm_start_loss(logits, labels[None], soft).item())
    return sum(losses) / len(losses)


def test_a_lora_warm_start_fits_the_personas_and_merges_into_a_plain_model(tmp_path) -> None:
    spec = LoraSpec(
        base="tiny-test",
        games=("ipd",),
        games_per_game=24,
        rounds=4,
        steps=60,
        batch=8,
        lr=2e-2,
        style=Style.COMPACT,
    )
    base, tokenizer = load_model("tiny-test")
    chat = ChatFormat(tokenizer)
    shaped, _ = build_persona_lora(spec, tmp_path, progress=False)
    assert not hasattr(shaped, "peft_config")  # merged: an ordinary model, no adapter left
    assert set(shaped.state_dict()) == set(base.state_dict())
    # tiny-test's 30 warm-start steps left the protocol tokens' (tied, frozen) embeddings near
    # their initialisation, which bounds what an adapter can change (measured: 1.88 -> 1.85);
    # a model that did not train at all keeps the base's loss to the last digit
    assert _persona_loss(shaped, chat, spec) < _persona_loss(base, chat, spec) - 0.01
    again, _ = build_persona_lora(spec, tmp_path, progress=False)
    for name, tensor in shaped.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name  # deterministic in the seed


def test_smollm2_ipd_is_an_embedded_model_keyed_by_its_recipe() -> None:
    assert "smollm2-135m-ipd" in MODELS
    name = _cache_name("smollm2-135m-ipd", SMOLLM2_IPD)
    assert name.startswith("smollm2-135m-ipd-")
    assert _cache_name("smollm2-135m-ipd", replace(SMOLLM2_IPD, steps=61)) != name
    assert _cache_name("smollm2-135m-ipd", replace(SMOLLM2_IPD, rounds=4)) != name
