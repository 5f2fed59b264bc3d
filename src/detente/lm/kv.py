"""Per-session KV caches and the batch buffer they are decoded in.

A session's cache is one tensor [layers, 2, kv_heads, length, head_dim] (keys and values of
every layer, unpadded), normally a view into the buffer of the batch that produced it: a row is
committed without a copy, and the buffer is freed (or, from a :class:`BufferPool`, reused) once
no session holds a view into it.

A batch is laid out so that every row's real tokens are contiguous and end at the last column:
row b's tokens occupy columns [start_b, columns). Rows are left-padded before ``start_b`` only;
a row whose cache would leave a gap before its new tokens re-feeds the last cached tokens
instead (see :func:`layout`). :class:`BatchKV` holds the buffer [layers, 2, B, kv_heads,
capacity, head_dim] and fills it in place (no concatenation per step); :func:`attention_bias`
turns ``valid`` [B, columns] into an explicit 4-D additive mask (causal over columns, only real
keys), and positions are passed explicitly, so padding never shifts a position nor leaks into
attention.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence

import torch
from torch import Tensor
from transformers.cache_utils import Cache, CacheLayerMixin

KV = Tensor  # [layers, 2, kv_heads, length, head_dim]


def kv_length(kv: KV | None) -> int:
    """Number of cached tokens."""
    return 0 if kv is None else kv.shape[-2]


def crop(kv: KV, length: int) -> KV:
    """The first ``length`` cached tokens (a view)."""
    return kv[..., :length, :]


def layout(lengths: Sequence[int], cached: Sequence[int]) -> tuple[list[int], int]:
    """How many cached tokens each row keeps, and the input width.

    Row b has ``lengths[b]`` tokens, of which ``cached[b]`` (< ``lengths[b]``) are cached. The
    width is the longest uncached run; a row with a shorter run keeps only
    ``lengths[b] - width`` cached tokens and feeds the rest, so its feed fills the width
    whenever it keeps any cache, and its tokens stay contiguous.
    """
    width = max(n - c for n, c in zip(lengths, cached, strict=True))
    keep = [max(0, min(c, n - width)) for n, c in zip(lengths, cached, strict=True)]
    return keep, width


def attention_bias(valid: Tensor, query_length: int, dtype: torch.dtype) -> Tensor:
    """Additive mask [B, 1, query_length, columns] for the last ``query_length`` columns.

    A query attends to the real columns at or before its own; it always attends to itself, so a
    padding query never has an empty row (which would produce NaN that leaks through 0·NaN).
    """
    columns = valid.shape[1]
    keys = torch.arange(columns, device=valid.device)
    queries = keys[columns - query_length :]
    causal = keys[None, :] <= queries[:, None]
    allowed = (valid[:, None, :] & causal[None]) | (keys[None, :] == queries[:, None])[None]
    bias = torch.zeros(allowed.shape, dtype=dtype, device=valid.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


Empty = Callable[[tuple[int, ...], Tensor], Tensor]
"""Makes an uninitialised tensor of a shape, with the dtype and device of a sample tensor."""


def _empty(shape: tuple[int, ...], like: Tensor) -> Tensor:
    return like.new_empty(shape)


class BufferPool:
    """Reuses the memory of batch buffers that no session views any more.

    Fresh CPU memory costs a page fault per page on first touch (and the kernel's zeroing),
    several times the cost of copying the caches in; freeing it costs again. The pool keeps the
    ``keep`` most recent buffers, each made with some ``headroom``, so that the next batch, a
    little longer, fits in one that the previous batch's sessions have left.
    """

    def __init__(self, keep: int = 2, headroom: float = 1.25) -> None:
        self.keep, self.headroom = keep, headroom
        self._buffers: list[Tensor] = []

    def empty(self, shape: tuple[int, ...], like: Tensor, in_use: Collection[int]) -> Tensor:
        """A tensor of ``shape``, in a kept buffer that fits and is not ``in_use`` (the
        :meth:`memory` of every cache still held), else in a new one."""
        need = math.prod(shape)
        free = [
            b
            for b in self._buffers
            if self.memory(b) not in in_use
            and b.numel() >= need
            and (b.dtype, b.device) == (like.dtype, like.device)
        ]
        buffer = free[0] if free else like.new_empty(int(need * self.headroom))
        others = [b for b in self._buffers if b is not buffer]
        self._buffers = [*others[max(0, len(others) - self.keep + 1) :], buffer]
        return buffer[:need].view(shape)

    @staticmethod
    def memory(tensor: Tensor) -> int:
        """Which memory a tensor (or any view of it) lives in: its storage's address."""
        return tensor.untyped_storage().data_ptr()


class BatchKV(Cache):
    """The KV cache of one batch: a buffer written in place, one column per fed token.

    ``caches[b]`` (or None) is copied right-aligned before column ``columns``, the number of
    cache columns. ``capacity`` bounds the columns ever written; ``empty`` makes the buffer.
    """

    def __init__(
        self,
        num_layers: int,
        caches: Sequence[KV | None],
        columns: int,
        capacity: int,
        empty: Empty = _empty,
    ) -> None:
        self.layers: list[_BufferLayer]
        super().__init__(layers=[_BufferLayer(self, i) for i in range(num_layers)])
        self.capacity, self.empty = capacity, empty
        self.data: Tensor | None = None
        for layer in self.layers:
            layer.length = columns
        sample = next((kv for kv in caches if kv_length(kv) > 0), None)
        if sample is None:
            return
        layers, _, heads, _, head_dim = sample.shape
        self.data = empty((layers, 2, len(caches), heads, capacity, head_dim), sample)
        # Columns from ``columns`` on are written before they are read; padding is zeroed, as
        # masked keys still enter the attention product (where NaN garbage would leak).
        for row, kv in enumerate(caches):
            length = kv_length(kv)
            if length < columns:
                self.data[:, :, row, :, : columns - length].zero_()
            if kv is not None and length > 0:
                self.data[:, :, row, :, columns - length : columns] = kv

    @property
    def length(self) -> int:
        """Columns written so far (cache columns plus every fed token)."""
        return self.layers[0].length

    def row(self, index: int, start: int) -> KV:
        """Row ``index``'s cached columns [start, length) as a view."""
        assert self.data is not None
        return self.data[:, :, index, :, start : self.length]

    def select(self, index: Tensor) -> None:
        """Keep only the rows ``index`` (a copy; views taken before keep the old buffer)."""
        if self.data is not None:
            self.data = self.data.index_select(2, index)

    def allocate(self, keys: Tensor, values: Tensor) -> None:
        """First write without any cached row: allocate from the new states' shape."""
        if keys.shape != values.shape:
            raise ValueError("the engine's KV buffer needs keys and values of one shape")
        batch, heads, _, head_dim = keys.shape
        self.data = self.empty((len(self.layers), 2, batch, heads, self.capacity, head_dim), keys)


class _BufferLayer(CacheLayerMixin):
    """One layer's part of a :class:`BatchKV` and the columns written to it."""

    is_sliding = False
    is_compileable = False

    def __init__(self, owner: BatchKV, index: int) -> None:
        super().__init__()
        self.owner, self.index = owner, index
        self.length = 0
        self.is_initialized = True

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:
        """Never needed: the owner allocates the buffer."""

    def update(
        self, key_states: Tensor, value_states: Tensor, *args: object, **kwargs: object
    ) -> tuple[Tensor, Tensor]:
        owner = self.owner
        if owner.data is None:
            owner.allocate(key_states, value_states)
        assert owner.data is not None
        start, end = self.length, self.length + key_states.shape[-2]
        owner.data[self.index, 0, :, :, start:end] = key_states
        owner.data[self.index, 1, :, :, start:end] = value_states
        self.length = end
        return owner.data[self.index, 0, :, :, :end], owner.data[self.index, 1, :, :, :end]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.owner.capacity
