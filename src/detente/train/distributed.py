"""Data-parallel learners with torch.distributed: the frozen base replicated, LoRA grads summed.

Started by ``torchrun`` (one process per GPU; gloo on CPU). Each process plays a contiguous
shard of the iteration's games, the records are gathered so that every process computes the
same credits, and each process back-propagates its share of the token sequences. The loss of
every share is already divided by N, the action-token count of the *whole* iteration, so the sum
of the processes' gradients is the gradient of the one-process loss: after the sum
(:meth:`DataParallel.reduce_gradients`, one all-reduce over the trainable LoRA parameters only)
every process clips and steps identically and the adapters stay equal.

This is what ``DistributedDataParallel`` over the frozen base would do (it too reduces only
parameters that require grad), done by hand because the scorer calls the decoder body and the
output head directly (logits at action positions only), which DDP's forward hooks would not
see, and because the gradient is accumulated over micro-batches before one reduction anyway.

Placement: each process works on GPU ``LOCAL_RANK`` of its node (:meth:`DataParallel.device`),
its learner and an in-process vLLM rollout engine alike (vLLM's engine process would otherwise
start on GPU 0 in every rank).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from detente.rollout.shards import shard_ranges

T = TypeVar("T")


@dataclass(frozen=True)
class DataParallel:
    """This process's place among the data-parallel learners (``size`` 1: alone)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # this process's index on its node (torchrun's LOCAL_RANK)

    @classmethod
    def from_env(cls) -> DataParallel:
        """The process group already initialised, or the one ``torchrun`` describes
        (``WORLD_SIZE`` > 1; NCCL with one GPU per process, else gloo), or alone."""
        if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            backend = "gloo"
            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
                backend = "nccl"
            dist.init_process_group(backend)
        if dist.is_initialized():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return cls(dist.get_rank(), dist.get_world_size(), local)
        return cls()

    def device(self, device: str) -> str:
        """Where this process computes, given the run's resolved device: ``cuda`` becomes this
        rank's GPU ``cuda:LOCAL_RANK`` among data-parallel learners; anything else as given."""
        if self.size > 1 and device == "cuda":
            return f"cuda:{self.local_rank}"
        return device

    @property
    def main(self) -> bool:
        """Whether this process writes the run directory."""
        return self.rank == 0

    def part(self, n: int) -> range:
        """This process's contiguous share of ``n`` items."""
        return shard_ranges(n, self.size)[self.rank]

    def gather(self, items: list[T]) -> list[T]:
        """Every process's ``items``, concatenated in rank order (the same list everywhere)."""
        if self.size == 1:
            return items
        parts: list[list[T] | None] = [None] * self.size
        dist.all_gather_object(parts, items)
        return [item for part in parts for item in part or []]

    def reduce_gradients(self, params: Sequence[nn.Parameter]) -> None:
        """Sum the gradients of ``params`` over processes (a missing gradient counts as 0)."""
        if self.size == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for param, grad in zip(params, grads, strict=True):
            param.grad = flat[offset : offset + grad.numel()].view_as(grad).clone()
            offset += grad.numel()

    def sum_values(self, values: dict[str, float]) -> dict[str, float]:
        """``values`` summed over processes (e.g. per-share loss statistics)."""
        if self.size == 1:
            return values
        keys = sorted(values)
        total = torch.tensor([values[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(total)
        return dict(zip(keys, total.tolist(), strict=True))
