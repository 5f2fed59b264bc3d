"""Contiguous shards of a batch: rollout workers and data-parallel learners cut it alike."""

from __future__ import annotations


def shard_ranges(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into ``parts`` contiguous pieces whose sizes differ by at most one."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    size, extra = divmod(n, parts)
    bounds = [k * size + min(k, extra) for k in range(parts + 1)]
    return [range(bounds[k], bounds[k + 1]) for k in range(parts)]
