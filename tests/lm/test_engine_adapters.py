"""Adapters: per-request binding in mixed batches, save/load/copy/delete, trainable flags."""

from __future__ import annotations

import pytest
import torch

from detente.lm.engine import Engine

from .helpers import make_engine, perturb_adapter, request, user

MESSAGES = (user("Round 1. Bob played <A>. Your move?"),)


def two_adapters(engine: Engine) -> None:
    for name, seed in (("alice", 1), ("bob", 2)):
        engine.add_adapter(name, r=4, alpha=8)
        perturb_adapter(engine, name, seed=seed)


def probe_scores(engine: Engine, adapter: str | None) -> torch.Tensor:
    ids = engine.chat.encode(engine.chat.render(MESSAGES) + "<A> I will cooperate.")
    with torch.no_grad():
        return engine.score(torch.tensor([ids]), None, adapter).logprobs[0]


def test_mixed_batch_rows_get_their_own_adapter(engine: Engine) -> None:
    two_adapters(engine)
    adapters = ["alice", "bob", None, "bob", "alice"]
    mixed = engine.generate(
        [request(f"m{i}", MESSAGES, a, seed=7, max_new_tokens=16) for i, a in enumerate(adapters)]
    )
    for i, adapter in enumerate(adapters):
        (alone,) = engine.generate([request(f"a{i}", MESSAGES, adapter, seed=7, max_new_tokens=16)])
        assert mixed[i].token_ids == alone.token_ids
        assert mixed[i].logprobs == pytest.approx(alone.logprobs, abs=1e-5)
    base, alice, bob = (probe_scores(engine, a) for a in (None, "alice", "bob"))
    assert not torch.allclose(alice, base, atol=1e-3)
    assert not torch.allclose(bob, base, atol=1e-3)
    assert not torch.allclose(alice, bob, atol=1e-3)


def test_fresh_adapter_equals_base_and_init_is_seeded(engine: Engine) -> None:
    engine.add_adapter("a1", r=4, alpha=8, init_seed=3)
    engine.add_adapter("a2", r=4, alpha=8, init_seed=3)
    engine.add_adapter("a3", r=4, alpha=8, init_seed=4)
    torch.testing.assert_close(probe_scores(engine, "a1"), probe_scores(engine, None))
    p1, p2, p3 = (engine.parameters_of(n) for n in ("a1", "a2", "a3"))
    assert all(torch.equal(x, y) for x, y in zip(p1, p2, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(p1, p3, strict=True))


def test_save_load_copy_round_trip(engine: Engine, tmp_path) -> None:
    two_adapters(engine)
    engine.save_adapter("alice", tmp_path / "alice")
    assert (tmp_path / "alice" / "adapter_config.json").is_file()
    assert (tmp_path / "alice" / "adapter_model.safetensors").is_file()
    engine.load_adapter("alice2", tmp_path / "alice")
    torch.testing.assert_close(probe_scores(engine, "alice2"), probe_scores(engine, "alice"))

    params = engine.parameters_of("bob")
    engine.load_adapter("bob", tmp_path / "alice")  # in place: same parameter objects
    assert all(a is b for a, b in zip(params, engine.parameters_of("bob"), strict=True))
    torch.testing.assert_close(probe_scores(engine, "bob"), probe_scores(engine, "alice"))

    engine.copy_adapter("alice", "snapshot")
    before = probe_scores(engine, "snapshot")
    torch.testing.assert_close(before, probe_scores(engine, "alice"))
    perturb_adapter(engine, "alice", seed=9)
    torch.testing.assert_close(probe_scores(engine, "snapshot"), before)
    assert not any(p.requires_grad for p in engine.parameters_of("snapshot"))

    engine.save_adapter("snapshot", tmp_path / "alice")  # overwrite atomically
    engine.load_adapter("again", tmp_path / "alice")
    torch.testing.assert_close(probe_scores(engine, "again"), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice"]


def test_snapshot_put_into_another_engine(engine: Engine, tokenizer, trained_state) -> None:
    two_adapters(engine)
    replica = make_engine(tokenizer, trained_state)
    replica.put_adapter("alice", engine.snapshot_adapter("alice"))
    torch.testing.assert_close(probe_scores(replica, "alice"), probe_scores(engine, "alice"))
    assert not any(p.requires_grad for p in replica.parameters_of("alice"))
    params = replica.parameters_of("alice")
    replica.generate([request("s", MESSAGES, "alice", seed=3, max_new_tokens=8)])
    assert replica.cached_tokens() > 0
    replica.put_adapter("alice", engine.snapshot_adapter("bob"))  # overwritten in place
    assert all(a is b for a, b in zip(params, replica.parameters_of("alice"), strict=True))
    torch.testing.assert_close(probe_scores(replica, "alice"), probe_scores(engine, "bob"))
    assert replica.cached_tokens() == 0  # the session's cache held the old weights
    replica.sleep()
    replica.wake()
    with pytest.raises(ValueError, match="shape"):
        replica.add_adapter("small", r=2, alpha=4)
        replica.put_adapter("small", engine.snapshot_adapter("bob"))


def test_delete_adapters(engine: Engine) -> None:
    two_adapters(engine)
    engine.generate([request("s", MESSAGES, "bob")])
    engine.delete_adapter("bob")
    assert engine.adapter_names() == ["alice"]
    with pytest.raises(KeyError):
        engine.generate([request("s", MESSAGES, "bob")])
    alice = probe_scores(engine, "alice")
    engine.generate([request("t", MESSAGES, "alice")])
    torch.testing.assert_close(probe_scores(engine, "alice"), alice)
    base = probe_scores(engine, None)
    engine.delete_adapter("alice")
    assert engine.adapter_names() == []
    torch.testing.assert_close(probe_scores(engine, None), base)
    engine.generate([request("u", MESSAGES)])
    engine.add_adapter("carol", r=4, alpha=8)
    torch.testing.assert_close(probe_scores(engine, "carol"), base)


def test_adapter_name_errors(engine: Engine) -> None:
    engine.add_adapter("alice", r=4, alpha=8)
    with pytest.raises(ValueError, match="exists"):
        engine.add_adapter("alice")
    with pytest.raises(ValueError, match="reserved"):
        engine.add_adapter("__base__")
    with pytest.raises(KeyError):
        engine.copy_adapter("nobody", "x")


def test_gradients_reach_only_the_scored_trainable_adapter(engine: Engine) -> None:
    two_adapters(engine)
    engine.copy_adapter("alice", "frozen")
    ids = torch.tensor([engine.chat.encode(engine.chat.render(MESSAGES) + "<A>")])
    with engine.use_adapter("bob"):
        pass  # switching the active adapter must not change which adapters train
    assert all(p.requires_grad for p in engine.parameters_of("alice"))
    engine.score(ids, None, "alice").logprobs.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in engine.parameters_of("alice"))
    assert all(p.grad is None for n in ("bob", "frozen") for p in engine.parameters_of(n))
    base = [p for n, p in engine.model.named_parameters() if "lora_" not in n]
    assert base and all(p.grad is None and not p.requires_grad for p in base)
    engine.set_trainable("alice", False)
    assert not any(p.requires_grad for p in engine.parameters_of("alice"))


def test_score_with_left_padding_and_entropy(engine: Engine) -> None:
    ids = engine.chat.encode(engine.chat.render(MESSAGES) + "<B>")
    short = ids[3:]
    batch = torch.full((2, len(ids)), engine.chat.pad_id)
    batch[0] = torch.tensor(ids)
    batch[1, 3:] = torch.tensor(short)
    mask = (torch.arange(len(ids)) >= torch.tensor([[0], [3]])).long()
    with torch.no_grad():
        padded = engine.score(batch, mask, None, with_entropy=True)
        alone = engine.score(torch.tensor([short]), None, None, with_entropy=True)
    torch.testing.assert_close(padded.logprobs[1, 3:], alone.logprobs[0], atol=1e-5, rtol=0)
    assert padded.entropy is not None and alone.entropy is not None
    torch.testing.assert_close(padded.entropy[1, 3:], alone.entropy[0], atol=1e-5, rtol=0)
    assert bool((padded.entropy[0] > 0).all())


def test_single_adapter_fast_path_equals_mixed_path(engine: Engine) -> None:
    """A batch of one adapter (or of the base) runs it alone; the same rows next to another
    adapter's row go through peft's mixed-batch forward. Both give the same replies."""
    two_adapters(engine)
    openings = [
        user(f"Round {i}. Bob played {'<A>' if i % 2 else '<B>'}. Your move?") for i in range(4)
    ]
    for adapter in ("alice", None):
        tag = adapter or "base"
        fast = engine.generate(
            [
                request(f"f{tag}{i}", (m,), adapter, seed=i, max_new_tokens=16)
                for i, m in enumerate(openings)
            ]
        )
        mixed = engine.generate(
            [
                request(f"m{tag}{i}", (m,), adapter, seed=i, max_new_tokens=16)
                for i, m in enumerate(openings)
            ]
            + [request(f"bob{tag}", MESSAGES, "bob", seed=9)]
        )
        for a, b in zip(fast, mixed, strict=False):
            assert a.token_ids == b.token_ids
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_adapters_added_later_follow_the_models_mode(engine: Engine) -> None:
    """A snapshot or a loaded adapter made while the model is in eval mode plays without
    dropout: its new dropout modules take the model's mode, not torch's default (training)."""
    engine.add_adapter("live", r=4, alpha=8, dropout=0.5)
    engine.model.eval()
    engine.copy_adapter("live", "snapshot")
    engine.add_adapter("later", r=4, alpha=8, dropout=0.5)
    dropouts = [
        (name, module)
        for name, module in engine.model.named_modules()
        if isinstance(module, torch.nn.Dropout) and any(a in name for a in ("snapshot", "later"))
    ]
    assert dropouts and not any(module.training for _, module in dropouts)
    engine.model.train()
    assert all(module.training for _, module in dropouts)
