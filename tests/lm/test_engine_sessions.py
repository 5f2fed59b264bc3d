"""Sessions: KV reuse across turns equals teacher forcing; token bookkeeping; re-samples; errors."""

from __future__ import annotations

import pytest
import torch

from detente.lm.engine import Engine
from detente.lm.types import GenerationResult

from .helpers import (
    Chat,
    assistant,
    extend,
    make_engine,
    perturb_adapter,
    request,
    teacher_logprobs,
    user,
)

SYSTEM = {"role": "system", "content": "You play a game with Bob."}


def opening(i: int) -> Chat:
    return (SYSTEM, user(f"Round 1. Bob played {'<A>' if i % 2 else '<B>'}. Your move?"))


def assert_matches_teacher(engine: Engine, session: str, adapter: str | None, results) -> None:
    """The session's tokens are the results' prompt+reply tokens, and every returned log-prob
    of an unconstrained reply equals the full-sequence teacher-forced one."""
    sequence = [t for r in results for t in (*r.prompt_ids, *r.token_ids)]
    assert list(engine.session_tokens(session)) == sequence
    teacher = teacher_logprobs(engine, sequence, adapter)
    at = 0
    for r in results:
        at += len(r.prompt_ids)
        if not r.constrained:
            expected = teacher[at : at + len(r.token_ids)]
            assert r.logprobs == pytest.approx(expected, abs=2e-4)
        at += len(r.token_ids)


def test_multi_turn_kv_reuse_equals_teacher_forcing(engine: Engine) -> None:
    engine.add_adapter("alice", r=4, alpha=8)
    perturb_adapter(engine, "alice", seed=1)
    for adapter in (None, "alice"):
        session, messages, results = f"s-{adapter}", opening(0), []
        for turn, budget in enumerate((12, 3, 20, 1, 12)):
            (result,) = engine.generate([request(session, messages, adapter, turn, budget)])
            results.append(result)
            messages = extend(messages, result, f"Round {turn + 2}. Your move?")
        assert_matches_teacher(engine, session, adapter, results)


def test_batched_sessions_with_padding_and_mixed_adapters(engine: Engine) -> None:
    for name, seed in (("alice", 1), ("bob", 2)):
        engine.add_adapter(name, r=4, alpha=8)
        perturb_adapter(engine, name, seed=seed)
    adapters = ["alice", "bob", None, "alice", "bob", None]
    chats = {f"s{i}": opening(i) for i in range(len(adapters))}
    history: dict[str, list[GenerationResult]] = {s: [] for s in chats}
    # Sessions join at different turns and are batched in varying orders and subsets, so the
    # caches in one batch have different lengths.
    schedule = [[0, 1], [0, 1, 2, 3], [3, 2, 1, 0, 4, 5], [5, 1, 3], [0, 2, 4, 5, 1, 3]]
    for step, rows in enumerate(schedule):
        batch = [
            request(f"s{i}", chats[f"s{i}"], adapters[i], seed=100 * step + i, max_new_tokens=4 + i)
            for i in rows
        ]
        for req, result in zip(batch, engine.generate(batch), strict=True):
            history[req.session_id].append(result)
            chats[req.session_id] = extend(req.messages, result, f"Step {step}. Go on.")
    for i, adapter in enumerate(adapters):
        assert_matches_teacher(engine, f"s{i}", adapter, history[f"s{i}"])


def test_session_tokens_equal_reencoding_of_rendered_chat(engine: Engine) -> None:
    """Exactly equal for constrained replies (canonical tokens); for free replies (sampled tokens
    may be non-canonical) the decoded text equals the rendered chat."""
    chat = engine.chat
    constrained, free = opening(0), opening(1)
    for turn in range(4):
        budget = 2 if turn == 1 else 12  # an unfinished free reply: the delta holds <|im_end|>
        results = engine.generate(
            [
                request("c", constrained, seed=turn, allowed=("<A>", "<B>", "I trust you.")),
                request("f", free, seed=turn, max_new_tokens=budget),
            ]
        )
        for session, messages, result in zip(("c", "f"), (constrained, free), results, strict=True):
            prompt = list(engine.session_tokens(session))[: -len(result.token_ids)]
            rendered = chat.render(messages)
            if session == "c":
                assert prompt == chat.encode(rendered)
            assert chat.decode(prompt) == rendered
        constrained = extend(constrained, results[0], f"Round {turn + 2}.")
        free = extend(free, results[1], f"Round {turn + 2}.")


def test_resample_discards_previous_reply(engine: Engine) -> None:
    messages = opening(0)
    (first,) = engine.generate([request("s", messages, seed=1)])
    (second,) = engine.generate([request("s", messages, seed=2)])
    (third,) = engine.generate([request("s", messages, seed=1)])
    assert second.prompt_ids == first.prompt_ids
    assert third.token_ids == first.token_ids  # same seed, same cached prompt
    assert third.logprobs == pytest.approx(first.logprobs, abs=1e-5)
    assert_matches_teacher(engine, "s", None, [third])
    (fourth,) = engine.generate([request("s", extend(messages, third, "Round 2."), seed=3)])
    assert_matches_teacher(engine, "s", None, [third, fourth])


def test_resample_after_later_turn_keeps_earlier_turns(engine: Engine) -> None:
    first_messages = opening(1)
    (first,) = engine.generate([request("s", first_messages, seed=1)])
    messages = extend(first_messages, first, "Round 2.")
    engine.generate([request("s", messages, seed=2)])
    (again,) = engine.generate([request("s", messages, seed=3, allowed=("<A>", "<B>"))])
    assert_matches_teacher(engine, "s", None, [first, again])


def test_session_errors(engine: Engine) -> None:
    engine.add_adapter("alice", r=4, alpha=8)
    messages = opening(0)
    (result,) = engine.generate([request("s", messages, "alice", seed=1)])
    with pytest.raises(ValueError, match="adapter"):
        engine.generate([request("s", extend(messages, result, "Next."), None)])
    with pytest.raises(ValueError, match="reply exactly as returned"):
        engine.generate(
            [request("s", (*messages, assistant(result.text + "x"), user("Next.")), "alice")]
        )
    with pytest.raises(ValueError, match="neither repeat"):
        engine.generate([request("s", (SYSTEM, user("Something else.")), "alice")])
    with pytest.raises(ValueError, match="twice"):
        engine.generate([request("t", messages), request("t", messages)])
    with pytest.raises(KeyError, match="carol"):
        engine.generate([request("u", messages, "carol")])
    with pytest.raises(ValueError, match="assistant"):
        request("v", (*messages, assistant("x")))
    # A failed batch changes nothing: the session still continues from its last reply.
    (after,) = engine.generate([request("s", extend(messages, result, "Next."), "alice")])
    assert_matches_teacher(engine, "s", "alice", [result, after])


def test_end_sessions_starts_over(engine: Engine) -> None:
    messages = opening(0)
    (first,) = engine.generate([request("s", messages, seed=1)])
    engine.end_sessions(["s", "never-started"])
    assert engine.cached_tokens() == 0
    (again,) = engine.generate([request("s", (SYSTEM, user("New game.")), seed=1)])
    assert list(again.prompt_ids) == engine.chat.encode(
        engine.chat.render((SYSTEM, user("New game.")))
    )
    assert first.prompt_ids != again.prompt_ids


def test_cache_eviction_does_not_change_results(tokenizer, trained_state, engine: Engine) -> None:
    evicting = make_engine(tokenizer, trained_state, max_cache_tokens=0)
    for eng in (engine, evicting):
        chats = {"a": opening(0), "b": opening(1)}
        outputs = []
        for turn in range(3):
            batch = [request(s, chats[s], seed=turn) for s in chats]
            for req, result in zip(batch, eng.generate(batch), strict=True):
                outputs.append(result)
                chats[req.session_id] = extend(req.messages, result, "Go on.")
        if eng is engine:
            reference = outputs
    assert evicting.cached_tokens() == 0
    for ours, ref in zip(outputs, reference, strict=True):
        assert ours.token_ids == ref.token_ids
        assert ours.logprobs == pytest.approx(ref.logprobs, abs=1e-4)


def test_generate_restores_training_mode(engine: Engine) -> None:
    engine.add_adapter("alice", r=4, alpha=8)
    engine.model.train()
    engine.generate([request("s", opening(0), "alice")])
    assert engine.model.training
    assert torch.is_grad_enabled()


def test_caches_dropped_after_a_weight_change_stay_exact(engine: Engine) -> None:
    engine.add_adapter("alice", r=4, alpha=8)
    perturb_adapter(engine, "alice", seed=1)
    messages = opening(0)
    (first,) = engine.generate([request("s", messages, "alice", seed=1)])
    perturb_adapter(engine, "alice", seed=2)  # as an optimizer step would
    engine.drop_caches(["alice"])
    assert engine.cached_tokens() == 0
    (second,) = engine.generate([request("s", extend(messages, first, "Next."), "alice", seed=2)])
    sequence = [*first.prompt_ids, *first.token_ids, *second.prompt_ids, *second.token_ids]
    teacher = teacher_logprobs(engine, sequence, "alice")
    assert second.logprobs == pytest.approx(teacher[-len(second.token_ids) :], abs=2e-4)


def test_identical_fresh_prompts_share_one_prefill_row(engine: Engine) -> None:
    """Rows that open with the same tokens and adapter are prefilled once and then copied; each
    still samples with its own seed, equal to running alone, and continues exactly."""
    engine.add_adapter("alice", r=4, alpha=8)
    perturb_adapter(engine, "alice", seed=1)
    adapters = [None, None, "alice", None, "alice", None]
    batch = [request(f"s{i}", opening(0), a, seed=i) for i, a in enumerate(adapters)]
    batch[5] = request("s5", opening(1), None, seed=5)
    results = engine.generate(batch)
    assert len({r.token_ids for r in results}) > 1
    for i, (req, result) in enumerate(zip(batch, results, strict=True)):
        (alone,) = engine.generate([request(f"a{i}", req.messages, req.adapter, seed=i)])
        assert result.token_ids == alone.token_ids
        assert result.logprobs == pytest.approx(alone.logprobs, abs=1e-5)
    follow = [
        request(r.session_id, extend(r.messages, res, "Go on."), r.adapter, seed=7)
        for r, res in zip(batch, results, strict=True)
    ]
    for req, first, second in zip(follow, results, engine.generate(follow), strict=True):
        assert_matches_teacher(engine, req.session_id, req.adapter, [first, second])


def test_rows_stopping_at_different_steps_compact_the_batch(engine: Engine) -> None:
    """Most rows stop early (the batch is compacted, more than once); the caches of rows that
    stopped before a compaction stay valid for their next turn."""
    budgets = [1, 1, 1, 1, 1, 2, 3, 12, 30, 30]
    chats = {f"s{i}": opening(i) for i in range(len(budgets))}
    history: dict[str, list[GenerationResult]] = {s: [] for s in chats}
    for turn in range(2):
        batch = [
            request(s, chats[s], seed=10 * turn + i, max_new_tokens=budgets[i - turn])
            for i, s in enumerate(chats)
        ]
        for req, result in zip(batch, engine.generate(batch), strict=True):
            history[req.session_id].append(result)
            chats[req.session_id] = extend(req.messages, result, "Go on.")
    assert any(len(h[0].token_ids) == 1 for h in history.values())
    assert any(len(h[0].token_ids) > 6 for h in history.values())
    for session, results in history.items():
        assert_matches_teacher(engine, session, None, results)
