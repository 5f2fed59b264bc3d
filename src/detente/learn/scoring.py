"""Teacher-forced scoring of action tokens, computing logits only where they are needed.

The decoder body runs over the whole padded sequences; the output head runs only on the hidden
states that predict action tokens (position k−1 predicts token k), so the vocabulary-sized logits
exist for N action tokens instead of B×L positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from detente.learn.loss import token_logprobs_and_entropy
from detente.lm.sampling import nucleus

if TYPE_CHECKING:  # the trainer's scoring path needs no game records (benchmarks/gpu_check.py)
    from detente.learn.batch import TokenSequence


@dataclass
class PaddedBatch:
    """Right-padded tensors of a mini-batch of sequences; targets flattened over action tokens."""

    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    predicts_action: torch.Tensor  # [B, L-1] bool: position k predicts action token k+1
    credit: torch.Tensor  # [N] credit of each action token (in order of predicts_action)
    sampler_logp: torch.Tensor  # [N]
    allowed: list[tuple[int, ...] | None]  # [N] constrained tokens: the ids allowed there
    old_logp: torch.Tensor | None = None  # [N] π_old (train.loss=ppo: the trainer's scores
    # before the iteration's first optimizer step); None: not scored

    def allowed_mask(self, vocab_size: int) -> torch.Tensor | None:
        """[N, V] bool, True where a token is allowed (every token of unconstrained positions);
        None when no position is constrained."""
        if all(a is None for a in self.allowed):
            return None
        mask = torch.ones((len(self.allowed), vocab_size), dtype=torch.bool)
        for k, ids in enumerate(self.allowed):
            if ids is not None:
                mask[k] = False
                mask[k, list(ids)] = True
        return mask.to(self.credit.device)

    @property
    def action_tokens(self) -> int:
        return int(self.predicts_action.sum())


def pad_batch(sequences: Sequence[TokenSequence], pad_id: int, device: torch.device) -> PaddedBatch:
    length = max(len(s.tokens) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), length), dtype=torch.long)
    action = torch.zeros((len(sequences), length), dtype=torch.bool)
    credit, sampler, allowed = [], [], []
    for row, seq in enumerate(sequences):
        n = len(seq.tokens)
        ids[row, :n] = torch.tensor(seq.tokens)
        attention[row, :n] = 1
        action[row, :n] = torch.tensor(seq.action, dtype=torch.bool)
        credit += [c for c, a in zip(seq.credit, seq.action, strict=True) if a]
        sampler += [lp for lp, a in zip(seq.sampler_logp, seq.action, strict=True) if a]
        allowed += [ids for ids, a in zip(seq.allowed, seq.action, strict=True) if a]
    if action[:, 0].any():
        raise ValueError("a sequence starts with an action token: nothing predicts it")
    return PaddedBatch(
        ids.to(device),
        attention.to(device),
        action[:, 1:].to(device),
        torch.tensor(credit, dtype=torch.float32, device=device),
        torch.tensor(sampler, dtype=torch.float32, device=device),
        allowed,
    )


@dataclass(frozen=True)
class ActionScores:
    """Scores of a batch's N action tokens under one model."""

    logp: torch.Tensor  # [N] log π(token), differentiable when grad is enabled
    entropy: torch.Tensor  # [N] entropy of π at each action position
    support: torch.Tensor | None  # [N, V] bool, the tokens π may sample there (None: all)


def sampling_support(
    logits: torch.Tensor, targets: torch.Tensor, allowed: torch.Tensor | None, top_p: float
) -> torch.Tensor | None:
    """The tokens the sampler could draw at each action position, [N, V] bool (None: all).

    As the engine does it (:func:`detente.lm.sampling.sampling_logprobs`): the allowed tokens
    (constrained replies), then, if ``top_p`` < 1, the top-p :func:`nucleus` of the tempered
    distribution restricted to them. The sampled token itself is always in the support, so a
    token that float rounding puts just outside the trainer's nucleus keeps a finite log-prob.
    ``logits`` [N, V] are already divided by the temperature; no gradient flows through the set.
    """
    if top_p >= 1:
        return allowed
    with torch.no_grad():
        masked = logits if allowed is None else logits.masked_fill(~allowed, -math.inf)
        top = torch.full((logits.shape[0],), top_p, device=logits.device)
        support = nucleus(torch.log_softmax(masked, dim=-1), top)
        if allowed is not None:
            support &= allowed
        support[torch.arange(len(targets), device=logits.device), targets] = True
    return support


def decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The decoder body and the output head of a Hugging Face causal LM, peft-wrapped or not
    (a LoRA adapter's layers sit inside the body), to run the head only where logits are
    needed."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def action_logprobs(
    model: torch.nn.Module,
    batch: PaddedBatch,
    temperature: float = 1.0,
    top_p: float = 1.0,
    autocast: torch.dtype | None = None,
    support: torch.Tensor | None = None,
) -> ActionScores:
    """log π(action token) and the policy entropy at each action position, both [N].

    π is the sampling distribution: softmax(logits / temperature) restricted to the
    :func:`sampling_support` (the allowed tokens at constrained positions, the top-p nucleus
    when ``top_p`` < 1) and renormalised there, as the engine sampled it, so the importance
    ratio against the sampler's log-probs is 1 when nothing changed. A given ``support``
    replaces the model's own (to score the base model on the live policy's support, so that
    KL_k3 compares two distributions over the same tokens).

    ``model`` is a Hugging Face causal LM (peft-wrapped or not): its decoder body and output
    embeddings are used directly, so only the N action positions go through the output head.
    ``autocast``: the dtype of an autocast region around the forward (None: none).
    """
    decoder, head = decoder_and_head(model)
    device_type = batch.input_ids.device.type
    with torch.autocast(device_type, dtype=autocast, enabled=autocast is not None):
        hidden = decoder(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask
        ).last_hidden_state
        selected = hidden[:, :-1][batch.predicts_action]  # [N, H]
        logits = head(selected)
    targets = batch.input_ids[:, 1:][batch.predicts_action]
    logits = logits.float() / temperature
    if support is None:
        support = sampling_support(logits, targets, batch.allowed_mask(logits.shape[-1]), top_p)
    logp, entropy = token_logprobs_and_entropy(
        logits[None], targets[None], None if support is None else support[None]
    )
    return ActionScores(logp[0], entropy[0], support)
