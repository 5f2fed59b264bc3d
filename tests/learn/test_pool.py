"""The opponent pool in bounded memory: LRU residency of snapshots and waves of games."""

from __future__ import annotations

import random

import pytest
import torch

from detente.learn.pool import ResidentPool, waves
from detente.lm.models import load_engine
from detente.lm.types import GenerationRequest, SamplingParams


@pytest.mark.parametrize("capacity", [1, 2, 3])
def test_waves_are_the_fewest_contiguous_pieces_within_capacity(capacity):
    rng = random.Random(capacity)
    for _ in range(200):
        snapshots = [rng.choice([None, "a", "b", "c", "d"]) for _ in range(rng.randrange(12))]
        cut = waves(snapshots, capacity)
        assert [i for w in cut for i in w] == list(range(len(snapshots)))
        playing = [{snapshots[i] for i in w} - {None} for w in cut]
        assert all(len(p) <= capacity for p in playing)
        for k in range(len(cut) - 1):  # no wave could have taken the next game too
            assert len(playing[k] | {snapshots[cut[k + 1].start]}) > capacity


def _reply(engine, adapter: str, session: str):
    request = GenerationRequest(
        session_id=session,
        messages=({"role": "user", "content": "Round 1. Your move?"},),
        adapter=adapter,
        seed=7,
        sampling=SamplingParams(max_new_tokens=12),
    )
    (result,) = engine.generate([request])
    engine.end_sessions([session])
    return result.token_ids, result.logprobs


def test_at_most_capacity_snapshots_in_the_engine_and_a_reloaded_one_plays_as_before(tmp_path):
    engine = load_engine("tiny-test")
    engine.add_adapter("live", r=4, alpha=8)
    pool = ResidentPool(engine, tmp_path, capacity=2)
    names = [f"pool-{k}" for k in range(4)]
    generator = torch.Generator().manual_seed(0)
    first: dict[str, tuple] = {}

    def in_engine() -> list[str]:
        return [n for n in engine.adapter_names() if n in names]

    for name in names:
        with torch.no_grad():  # a different policy for every snapshot
            for param in engine.parameters_of("live"):
                param.add_(0.3 * torch.randn(param.shape, generator=generator))
        pool.take("live", name, save=True)
        first[name] = _reply(engine, name, f"first-{name}")
        assert len(in_engine()) <= 2
    assert pool.resident == in_engine() == names[2:]
    assert len({tokens for tokens, _ in first.values()}) > 1  # the snapshots do differ
    for k, name in enumerate([names[0], names[3], names[1], names[0], names[2]]):
        pool.hold({name})
        assert name in in_engine() and len(in_engine()) <= 2
        assert _reply(engine, name, f"again-{k}") == first[name]
    with pytest.raises(ValueError, match="capacity"):
        pool.hold(set(names[:3]))
