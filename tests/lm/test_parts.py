"""The small pieces: distributions, trie, KV batching, chat format, tokenizer, tiny model."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from detente.lm.chat import ChatFormat
from detente.lm.constrain import TokenTrie, TrieWalk
from detente.lm.kv import attention_bias, batch_cache, crop, kv_length
from detente.lm.sampling import draw, sampling_logprobs
from detente.lm.tiny import build_untrained
from detente.lm.tokenizer import SPECIAL_TOKENS, train_tokenizer
from detente.lm.types import SamplingParams


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
    first = [draw(logp[0], torch.Generator().manual_seed(5)) for _ in range(3)]
    assert len(set(first)) == 1 and first[0] in (0, 2)


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


def test_batch_cache_left_pads_and_bias_never_empties_a_row() -> None:
    def kv(n: int, fill: float):
        return [(torch.full((1, 2, n, 3), fill), torch.full((1, 2, n, 3), -fill))] * 2

    cache, valid = batch_cache([kv(2, 1.0), None, kv(4, 2.0)], torch.device("cpu"))
    assert valid.tolist() == [[False, False, True, True], [False] * 4, [True] * 4]
    keys = cache.layers[0].keys
    assert keys.shape == (3, 2, 4, 3)
    assert keys[0, :, :2].abs().sum() == 0 and (keys[0, :, 2:] == 1).all()
    assert kv_length(crop(kv(4, 1.0), 1)) == 1
    full = torch.cat([valid, torch.tensor([[False, True]] * 3)], dim=1)  # 1 pad + 1 real query
    bias = attention_bias(full, 2, torch.float32)
    assert bias.shape == (3, 1, 2, 6)
    allowed = bias[:, 0] == 0
    assert allowed.any(-1).all()  # every query row attends to something
    assert allowed[1, 0].tolist() == [False] * 4 + [True, False]  # the padding query: itself only
    assert allowed[0, 1].tolist() == [False, False, True, True, False, True]


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
