"""The small pieces: distributions, trie, KV batching, chat format, tokenizer, tiny model."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from detente.lm.chat import ChatFormat
from detente.lm.constrain import TokenTrie, TrieWalk
from detente.lm.kv import BatchKV, BufferPool, attention_bias, crop, kv_length, layout
from detente.lm.sampling import draw_tokens, request_uniforms, sampling_logprobs
from detente.lm.tiny import build_untrained
from detente.lm.tokenizer import SPECIAL_TOKENS, train_tokenizer
from detente.lm.types import SamplingParams

from .helpers import synthetic_chats


@settings(max_examples=50, deadline=None)
@given(
    logits=st.lists(st.floats(-5, 5), min_size=2, max_size=12),
    top_p=st.floats(0.05, 1.0),
    temperature=st.floats(0.1, 3.0),
)
def test_top_p_keeps_the_smallest_sufficient_set(logits, top_p, temperature) -> None:
    x = torch.tensor([logits])
    logp = sampling_logprobs(x, torch.tensor([temperature]), torch.tensor([top_p]))[0]
    assert torch.exp(logp).sum().item() == pytest.approx(1.0, abs=1e-5)
    full = torch.softmax(x[0] / temperature, dim=-1)
    kept = torch.isfinite(logp)
    assert full[kept].sum() >= top_p - 1e-5  # enough mass
    if (~kept).any():
        assert full[kept].min() >= full[~kept].max() - 1e-7  # the most likely ones
    without_smallest = full[kept].sum() - full[kept].min()
    assert kept.sum() == 1 or without_smallest < top_p + 1e-5  # and no more than needed


def test_distribution_mask_greedy_and_draws() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [1.0, 3.0, 2.0, 0.0]])
    allowed = torch.tensor([[True, False, True, False], [True, True, True, True]])
    logp = sampling_logprobs(logits, torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]), allowed)
    assert torch.isinf(logp[0, [1, 3]]).all()
    torch.testing.assert_close(logp[0, [0, 2]], torch.log_softmax(torch.tensor([1.0, 2.0]), 0))
    assert logp[1].tolist() == [float("-inf"), 0.0, float("-inf"), float("-inf")]
    uniforms = request_uniforms(torch.Generator().manual_seed(5), 3)
    assert torch.equal(uniforms, request_uniforms(torch.Generator().manual_seed(5), 3))
    first = draw_tokens(logp[[0, 0, 0]], uniforms[[0, 0, 0]]).tolist()
    assert len(set(first)) == 1 and first[0] in (0, 2)
    # Removed tokens are never drawn, at either end of the uniform's range.
    edges = torch.tensor([0.0, 1.0 - 2**-53, 0.5], dtype=torch.float64)
    for row in logp:
        drawn = draw_tokens(row.expand(3, -1), edges)
        assert torch.isfinite(row[drawn]).all()
    assert draw_tokens(logp[[1]], edges[[1]]).tolist() == [1]  # greedy: the argmax


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.8)])
def test_draws_follow_the_distribution(temperature: float, top_p: float) -> None:
    """Chi-square goodness of fit of inverse-CDF draws on a small vocabulary."""
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0, 1.0, -3.0]])
    logp = sampling_logprobs(logits, torch.tensor([temperature]), torch.tensor([top_p]))[0]
    n = 20_000
    uniforms = request_uniforms(torch.Generator().manual_seed(11), n)
    counts = torch.bincount(draw_tokens(logp.expand(n, -1), uniforms), minlength=6).double()
    expected = logp.exp().double() * n
    kept = expected > 0
    assert counts[~kept].sum() == 0
    chi2 = float(((counts[kept] - expected[kept]) ** 2 / expected[kept]).sum())
    dof = int(kept.sum()) - 1
    critical = {5: 20.52, 4: 18.47, 3: 16.27, 2: 13.82, 1: 10.83}[dof]  # p = 0.001
    assert chi2 < critical


def test_draws_of_a_row_do_not_depend_on_other_rows() -> None:
    logits = torch.randn(5, 30, generator=torch.Generator().manual_seed(0))
    logp = sampling_logprobs(logits, torch.ones(5), torch.full((5,), 0.9))
    uniforms = torch.rand(5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    together = draw_tokens(logp, uniforms)
    alone = torch.cat([draw_tokens(logp[[i]], uniforms[[i]]) for i in range(5)])
    assert torch.equal(together, alone)


def test_sampling_params_are_validated() -> None:
    for bad in ({"temperature": -1.0}, {"top_p": 0.0}, {"max_new_tokens": 0}):
        with pytest.raises(ValueError):
            SamplingParams(**bad)


def test_trie_walk_and_prefix_errors() -> None:
    trie = TokenTrie([(1, 2, 9), (1, 3, 9), (4, 9)])
    assert trie.depth == 3
    walk = TrieWalk(trie)
    assert sorted(walk.allowed()) == [1, 4]
    walk.advance(1)
    assert sorted(walk.allowed()) == [2, 3]
    with pytest.raises(ValueError):
        walk.advance(4)
    walk.advance(3)
    walk.advance(9)
    assert walk.done
    for bad in ([(1, 2), (1, 2, 3)], [(1, 2, 3), (1, 2)], [()]):
        with pytest.raises(ValueError):
            TokenTrie(bad)


def test_layout_keeps_every_row_contiguous() -> None:
    lengths, cached = [10, 4, 9, 3], [9, 0, 2, 0]
    keep, width = layout(lengths, cached)
    assert width == 7  # row 2 feeds 7 uncached tokens
    assert keep == [3, 0, 2, 0]  # row 0 re-feeds 6 cached tokens instead of padding
    for n, k in zip(lengths, keep, strict=True):
        assert k == 0 or n - k == width  # cache then feed, with no gap between


def test_batch_kv_pads_writes_in_place_and_bias_never_empties_a_row() -> None:
    def kv(n: int, fill: float) -> torch.Tensor:
        return torch.full((2, 2, 3, n, 4), fill)  # [layers, keys/values, heads, n, head_dim]

    cache = BatchKV(2, [kv(2, 1.0), None, kv(4, 2.0)], columns=4, capacity=7)
    assert cache.data is not None and cache.data.shape == (2, 2, 3, 3, 7, 4)
    assert cache.get_seq_length() == 4
    assert cache.data[:, :, 0, :, :2].abs().sum() == 0 and (cache.data[:, :, 0, :, 2:4] == 1).all()
    assert cache.data[:, :, 1, :, :4].abs().sum() == 0
    new = torch.full((3, 3, 2, 4), 5.0)
    for layer in range(2):
        keys, values = cache.update(new, -new, layer)
        assert keys.shape == (3, 3, 6, 4) and (values[:, :, 4:] == -5).all()
    assert cache.length == 6
    row = cache.row(0, start=2)
    assert kv_length(row) == 4 and (row[:, 0, :, :2] == 1).all() and (row[:, 0, :, 2:] == 5).all()
    assert kv_length(crop(row, 1)) == 1
    cache.select(torch.tensor([2]))
    assert cache.data.shape[2] == 1 and (row[:, 0, :, 2:] == 5).all()  # views keep their data

    valid = torch.arange(6)[None] >= torch.tensor([[2], [5], [0]])  # row 1: 1 real query
    bias = attention_bias(valid, 2, torch.float32)
    assert bias.shape == (3, 1, 2, 6)
    allowed = bias[:, 0] == 0
    assert allowed.any(-1).all()  # every query row attends to something
    assert allowed[1, 0].tolist() == [False] * 4 + [True, False]  # the padding query: itself only
    assert allowed[0, 0].tolist() == [False, False, True, True, True, False]


def test_tokenizer_special_tokens_template_and_determinism(tokenizer) -> None:
    texts = ["<|im_start|>user\nhello there<|im_end|>\n"] * 20
    a, b = train_tokenizer(texts, 300), train_tokenizer(texts, 300)
    assert a.get_vocab() == b.get_vocab()
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token_id == 3
    chat = ChatFormat(tokenizer)
    assert chat.end_of_turn == 2 and chat.stop_ids == {2}
    assert chat.generation_prompt == "<|im_start|>assistant\n"
    text = chat.render([{"role": "user", "content": "Hi é 😀"}])
    assert text == "<|im_start|>user\nHi é 😀<|im_end|>\n<|im_start|>assistant\n"
    assert chat.decode(chat.encode(text)) == text
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(texts, 100)


def test_chat_format_needs_a_template(tokenizer) -> None:
    bare = train_tokenizer(["abc"], 270)
    bare.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        ChatFormat(bare)


def test_buffer_pool_reuses_only_memory_no_cache_views() -> None:
    pool = BufferPool(keep=2)
    like = torch.zeros(1)
    with torch.inference_mode():  # as in the engine: views there do not record their base
        first = pool.empty((2, 3), like, in_use=set())
        view = first[1:, 1:]
        busy = {BufferPool.memory(view)}
        second = pool.empty((2, 3), like, in_use=busy)
        assert BufferPool.memory(second) != BufferPool.memory(first)
        third = pool.empty((3, 2), like, in_use={BufferPool.memory(second)})
        assert BufferPool.memory(third) == BufferPool.memory(first)  # free again: reused
        bigger = pool.empty((100,), like, in_use=set())
        assert bigger.shape == (100,) and BufferPool.memory(bigger) not in {
            BufferPool.memory(t) for t in (first, second)
        }


# Extends shorter chats (prefix-stable) but numbers turns, so a turn's text depends on its place.
NUMBERED_TEMPLATE = (
    "{% for m in messages %}[{{ loop.index }}]<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}[{{ messages|length + 1 }}]<|im_start|>assistant\n{% endif %}"
)


def test_render_tail_and_encode_batch_agree_with_whole_renders(tokenizer) -> None:
    chat = ChatFormat(tokenizer)
    assert chat.local
    checked = 0
    for full in synthetic_chats(20, seed=3):
        messages = full[: max(i for i, m in enumerate(full) if m["role"] == "user") + 1]
        for start, message in enumerate(messages):
            if message["role"] == "assistant":
                head = chat.render(messages[:start], generation_prompt=False)
                assert head + chat.render_tail(messages, start) == chat.render(messages)
                checked += 1
    assert checked > 20
    texts = [chat.render(m) for m in synthetic_chats(10, seed=4)] + ["", "é 😀 <|im_end|>"]
    assert chat.encode_batch(texts) == [chat.encode(t) for t in texts]
    assert chat.encode_batch(texts[::-1]) == [chat.encode(t) for t in texts[::-1]]  # memoised

    numbered = copy.deepcopy(tokenizer)
    numbered.chat_template = NUMBERED_TEMPLATE
    chat = ChatFormat(numbered)
    assert not chat.local and chat.render_tail(messages, 2) is None


def test_tiny_model_is_small_and_deterministic(tokenizer) -> None:
    a, b = build_untrained(tokenizer, seed=1), build_untrained(tokenizer, seed=1)
    c = build_untrained(tokenizer, seed=2)
    assert sum(p.numel() for p in a.parameters()) <= 2_000_000
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.config.vocab_size == len(tokenizer)
    with pytest.raises(ValueError):
        build_untrained(tokenizer, hidden=30, heads=4)
