"""Sampling: per-request seeds, temperature/top-p log-probs, greedy, constrained replies."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detente.lm.constrain import TokenTrie
from detente.lm.engine import Engine
from detente.lm.sampling import sampling_logprobs

from .helpers import make_engine, perturb_adapter, request, teacher_logprobs, user

MESSAGES = (user("Round 1. Bob played <B>. Your move?"),)
OTHER = (user("Round 3. Bob played <A>. Your move?"),)


@pytest.fixture(scope="module")
def shared_engine(tokenizer, trained_state) -> Engine:
    """One engine (with a perturbed adapter "alice") for all hypothesis examples."""
    engine = make_engine(tokenizer, trained_state)
    engine.add_adapter("alice", r=4, alpha=8)
    perturb_adapter(engine, "alice", seed=5)
    return engine


REPLIES = ("<A>", "<B>", "I trust you.", "I will defect.", "split", "<A> <B>", "paper")
_counter = itertools.count()


def test_same_seed_same_sample_whatever_the_batch_mates(engine: Engine) -> None:
    engine.add_adapter("alice", r=4, alpha=8)
    perturb_adapter(engine, "alice", seed=1)
    (alone,) = engine.generate([request("x0", MESSAGES, "alice", seed=42, max_new_tokens=20)])
    mates = [
        request("y1", OTHER, None, seed=1, max_new_tokens=3),
        request("x1", MESSAGES, "alice", seed=42, max_new_tokens=20),
        request("y2", OTHER + (user("More."),), "alice", seed=2, allowed=("<A>", "<B>")),
    ]
    in_batch = engine.generate(mates)[1]
    assert in_batch.token_ids == alone.token_ids
    assert in_batch.logprobs == pytest.approx(alone.logprobs, abs=1e-5)
    samples = {engine.generate([request(f"z{s}", MESSAGES, seed=s)])[0].token_ids for s in range(8)}
    assert len(samples) > 1


@pytest.mark.parametrize(("temperature", "top_p"), [(0.7, 1.0), (1.3, 0.8), (1.0, 0.5)])
def test_logprobs_are_those_of_the_tempered_nucleus(engine, temperature, top_p) -> None:
    (result,) = engine.generate(
        [request("s", MESSAGES, seed=3, max_new_tokens=16, temperature=temperature, top_p=top_p)]
    )
    sequence = list(engine.session_tokens("s"))
    start = len(result.prompt_ids)
    with torch.no_grad():
        logits = engine.model(input_ids=torch.tensor([sequence])).logits[0, start - 1 : -1]
    n = len(result.token_ids)
    expected = sampling_logprobs(logits[:n], torch.full((n,), temperature), torch.full((n,), top_p))
    picked = expected.gather(1, torch.tensor(result.token_ids)[:, None])[:, 0]
    assert result.logprobs == pytest.approx(picked.tolist(), abs=2e-4)
    if top_p == 1.0:
        tempered = teacher_logprobs(engine, sequence, None, temperature)[start:]
        assert result.logprobs == pytest.approx(tempered, abs=2e-4)


def test_greedy_ignores_the_seed(engine: Engine) -> None:
    results = engine.generate(
        [request(f"g{s}", MESSAGES, seed=s, max_new_tokens=10, temperature=0.0) for s in range(3)]
    )
    assert len({r.token_ids for r in results}) == 1
    assert all(lp == 0.0 for r in results for lp in r.logprobs)
    sequence = list(engine.session_tokens("g0"))
    with torch.no_grad():
        logits = engine.model(input_ids=torch.tensor([sequence])).logits[0]
    start = len(results[0].prompt_ids)
    argmax = logits[start - 1 : -1].argmax(-1).tolist()
    assert list(results[0].token_ids) == argmax


def constrained_distribution(engine: Engine, prompt: list[int], allowed: tuple[str, ...]) -> dict:
    """P(reply) of each allowed reply under the masked, renormalised sequential distribution."""
    replies = {(*engine.chat.reply_tokens(r), engine.chat.end_of_turn): r for r in allowed}
    trie = TokenTrie(replies)
    out = {}
    for tokens, reply in replies.items():
        with torch.no_grad():
            logits = engine.model(input_ids=torch.tensor([prompt + list(tokens)])).logits[0]
        node, logp = trie.root, 0.0
        for k, token in enumerate(tokens):
            ok = torch.tensor(list(node.children))
            step = torch.log_softmax(logits[len(prompt) - 1 + k][ok], dim=-1)
            logp += float(step[list(node.children).index(token)])
            node = node.children[token]
        out[reply] = logp
    return out


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    allowed=st.lists(st.sampled_from(REPLIES), min_size=1, max_size=4, unique=True),
    seed=st.integers(0, 2**32),
    adapter=st.sampled_from([None, "alice"]),
)
def test_constrained_replies_are_allowed_and_scored(shared_engine, allowed, seed, adapter) -> None:
    engine = shared_engine
    allowed = tuple(allowed)
    session = f"c{next(_counter)}"
    (result,) = engine.generate([request(session, MESSAGES, adapter, seed, allowed=allowed)])
    assert result.text in allowed and result.finished and result.constrained
    assert all(lp <= 0.0 for lp in result.logprobs)
    reply_ids = engine.chat.reply_tokens(result.text)
    assert list(result.token_ids) == [*reply_ids, engine.chat.end_of_turn]
    assert engine.chat.decode(reply_ids) == result.text
    prompt = list(result.prompt_ids)
    with engine.use_adapter(adapter):
        probs = constrained_distribution(engine, prompt, allowed)
    assert math.fsum(math.exp(v) for v in probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert sum(result.logprobs) == pytest.approx(probs[result.text], abs=1e-4)
    engine.end_sessions([session])


def test_constraint_overrides_max_new_tokens(engine: Engine) -> None:
    (result,) = engine.generate(
        [request("s", MESSAGES, seed=0, max_new_tokens=1, allowed=("I will defect.",))]
    )
    assert result.text == "I will defect." and result.finished
    assert all(lp == 0.0 for lp in result.logprobs)  # a single option: every step is forced
