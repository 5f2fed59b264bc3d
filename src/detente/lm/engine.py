"""The transformers + peft engine: batched generation with LoRA adapters bound per request.

One :meth:`Engine.generate` call is one batch. Each row carries its own adapter (peft's
mixed-adapter forward, ``"__base__"`` for the base model; a batch of one adapter, or of the base
alone, runs it directly, which gives the same results faster), its own sampling parameters and
its own seeded uniforms (see :mod:`detente.lm.sampling`), so a row's sample does not depend on
its batch mates (up to float rounding). The decode loop is ours: one prefill of every row's new
tokens, then one token per step with the KV cache written in place; a row stops at a stop token
(the template's end of turn, or eos) or at its budget, and leaves the batch when it is next
compacted.

On the CPU, models with grouped key/value heads attend without copying the cache per query
head (:mod:`detente.lm.attention`).

Sessions keep their token ids and KV cache between calls (see :mod:`detente.lm.sessions` for the
template delta and :mod:`detente.lm.kv` for batching caches of different lengths), so a game's
cost grows linearly with its turns.

Constrained replies (``allowed_replies``): tokens outside a trie of the allowed replies are
masked before temperature and top-p, and the returned log-probs are those of this masked,
renormalised distribution, i.e. of the distribution actually sampled from, not of the model's
unconstrained one. Each result lists the tokens allowed at every step, and the trainer scores a
constrained reply under the same mask (so the ratio π_θ / π_sampler is 1 on-policy): the
policy over such replies is the model's distribution restricted to the legal ones.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence
from transformers import PreTrainedTokenizerBase

from detente.lm.adapters import AdapterSet
from detente.lm.attention import select_attention
from detente.lm.chat import ChatFormat
from detente.lm.constrain import TokenTrie, TrieWalk
from detente.lm.kv import KV, BatchKV, BufferPool, attention_bias, crop, kv_length, layout
from detente.lm.sampling import draw_tokens, request_uniforms, sampling_logprobs
from detente.lm.sessions import Session, Turn, finish_turn, plan_turns, reply_text
from detente.lm.types import AdapterSnapshot, GenerationRequest, GenerationResult

_TRIE_CACHE_SIZE = 256


@dataclass(frozen=True)
class TokenScores:
    """Teacher-forced scores of a batch of sequences [B, T]: entries [B, T-1] for tokens 1..T-1."""

    logprobs: Tensor  # log p(token t | tokens < t), differentiable when grad is enabled
    entropy: Tensor | None  # entropy of the next-token distribution at each scored position


@dataclass
class _Row:
    """One request being decoded."""

    request: GenerationRequest
    turn: Turn
    uniforms: Tensor  # one per token the row may sample, drawn from its own seeded generator
    budget: int
    walk: TrieWalk | None
    replies: dict[tuple[int, ...], str] | None  # constrained: token sequence → allowed reply
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    allowed: list[tuple[int, ...]] = field(default_factory=list)  # constrained: per step
    finished: bool = False
    kv: KV | None = None


class _Batch:
    """The rows in a batch's KV buffer (stopped ones included, until compaction) and which of
    them still decode, with their first real columns and per-row sampling tensors."""

    def __init__(
        self, rows: list[_Row], starts: list[int], names: list[str] | None, device: torch.device
    ) -> None:
        self.rows, self.starts, self.names = rows, starts, names
        self.live = list(range(len(rows)))
        self.start_columns = torch.tensor(starts, device=device)
        sampling = [row.request.sampling for row in rows]
        self.temperature = torch.tensor([s.temperature for s in sampling], device=device)
        self.top_p = torch.tensor([s.top_p for s in sampling], device=device)
        self.uniforms = pad_sequence([row.uniforms for row in rows], batch_first=True)

    def compact(self) -> Tensor:
        """Keep only the live rows; returns their former indices (to select the cache with)."""
        index = torch.tensor(self.live, device=self.start_columns.device)
        self.rows = [self.rows[b] for b in self.live]
        self.starts = [self.starts[b] for b in self.live]
        if self.names is not None:
            self.names = [self.names[b] for b in self.live]
        self.start_columns, self.temperature, self.top_p, self.uniforms = (
            t[index] for t in (self.start_columns, self.temperature, self.top_p, self.uniforms)
        )
        self.live = list(range(len(self.rows)))
        return index


class Engine:
    """Several LoRA adapters on one base model, batched generation with sessions, scoring."""

    supports_constrained = True  # honours ``GenerationRequest.allowed_replies``

    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        device: str | torch.device = "cpu",
        max_cache_tokens: int | None = None,
    ) -> None:
        """``max_cache_tokens`` bounds the KV cache kept across sessions; past it, the least
        recently used sessions drop their cache (kept ids are re-encoded on their next call).
        Caches are views into their batch's buffer, which is freed with its last view."""
        self.device = torch.device(device)
        self._num_layers: int = model.config.get_text_config().num_hidden_layers
        model.to(self.device)
        select_attention(model, self.device)
        model.eval()
        model.requires_grad_(False)
        self.tokenizer = tokenizer
        self.chat = ChatFormat(tokenizer)
        self.adapters = AdapterSet(model)
        self.max_cache_tokens = max_cache_tokens
        self._sessions: dict[str, Session] = {}
        self._buffers = BufferPool()
        self._tries: dict[tuple[str, ...], tuple[TokenTrie, dict[tuple[int, ...], str]]] = {}
        self._clock = 0

    # ---- adapters -------------------------------------------------------------------------

    @property
    def model(self) -> nn.Module:
        """The peft-wrapped model (the plain base model while no adapter exists)."""
        return self.adapters.model

    def adapter_names(self) -> list[str]:
        return self.adapters.names()

    def add_adapter(
        self,
        name: str,
        r: int = 32,
        alpha: int = 64,
        dropout: float = 0.0,
        target_modules: str | list[str] = "all-linear",
        init_seed: int = 0,
        trainable: bool = True,
    ) -> None:
        """A fresh LoRA adapter (equal to the base until trained), trainable by default."""
        self.adapters.add(name, r, alpha, dropout, target_modules, init_seed, trainable)

    def save_adapter(self, name: str, path: str | os.PathLike[str]) -> None:
        """Save in peft format (a directory), atomically."""
        self.adapters.save(name, path)

    def load_adapter(
        self, name: str, path: str | os.PathLike[str], trainable: bool = False
    ) -> None:
        """Load a peft adapter directory as ``name``, overwriting an existing one in place (its
        sessions' caches are then dropped, as they hold activations of the old weights)."""
        self.adapters.load(name, path, trainable)
        self.drop_caches([name])

    def copy_adapter(self, src: str, dst: str) -> None:
        """Snapshot ``src`` into a new frozen adapter ``dst`` (e.g. for a pool of checkpoints)."""
        self.adapters.copy(src, dst)

    def delete_adapter(self, name: str) -> None:
        """Remove an adapter; sessions bound to it fail on their next call (or, if an adapter of
        that name is created again, go on without their now stale caches)."""
        self.adapters.delete(name)
        self.drop_caches([name])

    def snapshot_adapter(self, name: str) -> AdapterSnapshot:
        """A CPU copy of adapter ``name`` (to ``put_adapter`` into another engine)."""
        return self.adapters.snapshot(name)

    def put_adapter(self, name: str, snapshot: AdapterSnapshot) -> None:
        """Create adapter ``name`` (frozen) from a snapshot, or overwrite it in place (its
        sessions' caches are dropped, as they hold activations of the old weights)."""
        self.adapters.put(name, snapshot)
        self.drop_caches([name])

    def sleep(self) -> None:
        """Free the KV caches (sessions go on, re-encoding on their next call); the weights
        stay, as a trainer may share them."""
        self.drop_caches()
        self._buffers = BufferPool()

    def wake(self) -> None:
        """Nothing to restore: :meth:`sleep` only dropped caches."""

    def parameters_of(self, name: str) -> list[nn.Parameter]:
        """The LoRA parameters of adapter ``name``."""
        return self.adapters.parameters(name)

    def set_trainable(self, name: str, trainable: bool = True) -> None:
        """Whether adapter ``name``'s parameters require gradients."""
        self.adapters.set_trainable(name, trainable)

    @contextmanager
    def adapter_dropout(self, name: str) -> Iterator[None]:
        """Adapter ``name``'s LoRA dropout on inside (for its training forward; generation and
        scoring outside it never drop)."""
        with self.adapters.dropout(name):
            yield

    @contextmanager
    def use_adapter(self, name: str | None) -> Iterator[nn.Module]:
        """Forwards inside run with adapter ``name`` alone, or the base model (None)."""
        with self.adapters.active(name) as model:
            yield model

    def score(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None,
        adapter: str | None,
        temperature: float = 1.0,
        with_entropy: bool = False,
    ) -> TokenScores:
        """Teacher-forced log-probs of ``input_ids`` [B, T] under ``adapter`` (None: base).

        Any padding (left or right, marked 0 in ``attention_mask``) works: positions count the
        real tokens only. Gradients flow when enabled by the caller.
        """
        input_ids = input_ids.to(self.device)
        valid = (
            torch.ones_like(input_ids, dtype=torch.bool)
            if attention_mask is None
            else attention_mask.to(self.device).bool()
        )
        positions = (valid.long().cumsum(dim=1) - 1).clamp(min=0)
        bias = attention_bias(valid, input_ids.shape[1], self._dtype())
        with self.adapters.active(adapter) as model:
            logits = model(
                input_ids=input_ids, attention_mask=bias, position_ids=positions, use_cache=False
            ).logits
        logits = logits[:, :-1].float() / temperature
        norm = logits.logsumexp(dim=-1)
        chosen = logits.gather(-1, input_ids[:, 1:, None])[..., 0] - norm
        entropy = None
        if with_entropy:
            logp = logits - norm[..., None]
            entropy = -(logp.exp() * logp).nan_to_num().sum(-1)
        return TokenScores(chosen, entropy)

    # ---- sessions -------------------------------------------------------------------------

    def end_sessions(self, session_ids: Sequence[str]) -> None:
        """Forget these sessions and free their caches (unknown ids are ignored)."""
        for session_id in session_ids:
            self._sessions.pop(session_id, None)

    def drop_caches(self, adapters: Collection[str | None] | None = None) -> None:
        """Free the KV caches of sessions bound to ``adapters`` (None: all sessions). Sessions
        go on (their tokens are re-encoded on their next call): call this after changing an
        adapter's weights (an optimizer step) if its sessions continue."""
        for session in self._sessions.values():
            if adapters is None or session.adapter in adapters:
                session.kv = None

    def session_tokens(self, session_id: str) -> tuple[int, ...]:
        """Every token of the session so far (prompts and kept replies), in order."""
        return tuple(self._sessions[session_id].ids)

    def cached_tokens(self) -> int:
        """Total tokens held in session KV caches."""
        return sum(kv_length(s.kv) for s in self._sessions.values())

    # ---- generation -----------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One batch: a reply per request, each with its own adapter, sampling and seed."""
        if not requests:
            return []
        ids = [r.session_id for r in requests]
        if len(set(ids)) != len(ids):
            raise ValueError("a session appears twice in one batch")
        for request in requests:
            if request.adapter is not None:
                self.adapters.require(request.adapter)
        sessions = [self._sessions.get(r.session_id) for r in requests]
        turns = plan_turns(sessions, requests, self.chat)
        rows = [self._row(r, t) for r, t in zip(requests, turns, strict=True)]
        adapters = {r.adapter for r in requests}
        with torch.inference_mode(), self._eval_mode():
            if len(adapters) == 1:  # one adapter (or the base) alone: no mixed-batch forward
                with self.adapters.active(adapters.pop()) as model:
                    self._decode(rows, model, None)
            else:
                names = [a if a is not None else "__base__" for a in (r.adapter for r in requests)]
                self._decode(rows, self.model, names)
        self._clock += 1
        results = [self._commit(row) for row in rows]
        self._evict()
        return results

    def _row(self, request: GenerationRequest, turn: Turn) -> _Row:
        """A request's decoding state: its budget, reply constraint and seeded uniforms."""
        walk, replies = None, None
        budget = request.sampling.max_new_tokens
        if request.allowed_replies is not None:
            trie, replies = self._trie(request.allowed_replies)
            walk = TrieWalk(trie)
            budget = trie.depth
        generator = torch.Generator(device=self.device)
        generator.manual_seed(request.seed & 0xFFFF_FFFF_FFFF_FFFF)
        return _Row(request, turn, request_uniforms(generator, budget), budget, walk, replies)

    def _trie(self, allowed: tuple[str, ...]) -> tuple[TokenTrie, dict[tuple[int, ...], str]]:
        """The trie of the allowed replies (each + end of turn), and token sequence → reply."""
        if allowed not in self._tries:
            if len(self._tries) >= _TRIE_CACHE_SIZE:
                self._tries.clear()
            sequences = {
                tuple(self.chat.reply_tokens(reply)) + (self.chat.end_of_turn,): reply
                for reply in allowed
            }
            self._tries[allowed] = (TokenTrie(sequences), sequences)
        return self._tries[allowed]

    def _decode(self, rows: list[_Row], model: nn.Module, names: list[str] | None) -> None:
        """Prefill every row's new tokens, then sample token by token until all rows stop.

        ``names`` are the rows' adapters for a mixed-adapter forward (None: ``model`` as is).
        Rows that stop stay in the batch (fed padding) until at most half of it is live, then
        the batch is compacted; each stopped row keeps a view of its cache.
        """
        cache, logits, starts = self._prefill(rows, model, names)
        batch = _Batch(rows, starts, names, self.device)
        pad = self.chat.pad_id
        step = 0
        while True:
            self._sample(batch, logits, step)
            live = []
            for b in batch.live:
                if self._stopped(batch.rows[b]):
                    batch.rows[b].kv = cache.row(b, batch.starts[b])
                else:
                    live.append(b)
            if not live:
                return
            batch.live = live
            if 2 * len(live) <= len(batch.rows):
                cache.select(batch.compact())
            tokens = [pad] * len(batch.rows)
            for b in batch.live:
                tokens[b] = batch.rows[b].tokens[-1]
            positions = (cache.length - batch.start_columns)[:, None]
            logits = self._forward(
                model,
                torch.tensor(tokens)[:, None],
                positions,
                batch.start_columns,
                batch.names,
                cache,
            )
            step += 1

    def _prefill(
        self, rows: list[_Row], model: nn.Module, names: list[str] | None
    ) -> tuple[BatchKV, Tensor, list[int]]:
        """One forward over every row's uncached tokens (laid out by :func:`layout`); returns
        the batch cache, the rows' next-token logits and each row's first real column.

        Rows that feed the same tokens from scratch with the same adapter (e.g. games that
        open alike) share one row of the forward, which is then copied to each of them.
        """
        lengths = [len(row.turn.ids) for row in rows]
        keep, width = layout(lengths, [kv_length(row.turn.kv) for row in rows])
        columns = max(keep)
        starts = [columns + width - n for n in lengths]
        slots: dict[object, int] = {}
        unique: list[int] = []
        source = []
        for b, row in enumerate(rows):
            key = (row.request.adapter, tuple(row.turn.ids)) if keep[b] == 0 else b
            if key not in slots:
                slots[key] = len(unique)
                unique.append(b)
            source.append(slots[key])
        cache = BatchKV(
            self._num_layers,
            [crop(rows[b].turn.kv, keep[b]) if keep[b] else None for b in unique],
            columns,
            capacity=columns + width + max(row.budget for row in rows) - 1,
            empty=self._empty,
        )
        input_ids = torch.tensor(
            [
                [self.chat.pad_id] * (width - lengths[b] + keep[b]) + rows[b].turn.ids[keep[b] :]
                for b in unique
            ]
        )
        first = torch.tensor([starts[b] for b in unique])
        positions = (columns + torch.arange(width)[None] - first[:, None]).clamp(min=0)
        logits = self._forward(
            model,
            input_ids,
            positions,
            first.to(self.device),
            None if names is None else [names[b] for b in unique],
            cache,
        )
        if len(unique) < len(rows):
            index = torch.tensor(source, device=self.device)
            cache.select(index)
            logits = logits[index]
        return cache, logits, starts

    def _empty(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A batch buffer; on CPU in the memory of an earlier one that no session views (the
        CUDA caching allocator already reuses memory)."""
        if self.device.type != "cpu":
            return like.new_empty(shape)
        in_use = {BufferPool.memory(s.kv) for s in self._sessions.values() if s.kv is not None}
        return self._buffers.empty(shape, like, in_use)

    def _forward(
        self,
        model: nn.Module,
        input_ids: Tensor,
        positions: Tensor,
        starts: Tensor,
        names: list[str] | None,
        cache: BatchKV,
    ) -> Tensor:
        """Last-position logits [B, V] of one forward step; row b's real columns start at
        ``starts[b]`` and ``names`` are the rows' adapters (None: ``model`` as is)."""
        columns = cache.length + input_ids.shape[1]
        valid = torch.arange(columns, device=self.device)[None] >= starts[:, None]
        kwargs = {
            "input_ids": input_ids.to(self.device),
            "position_ids": positions.to(self.device),
            "attention_mask": attention_bias(valid, input_ids.shape[1], self._dtype()),
            "past_key_values": cache,
            "use_cache": True,
            "logits_to_keep": 1,
        }
        if names is not None:
            kwargs["adapter_names"] = names
        return model(**kwargs).logits[:, -1]

    def _sample(self, batch: _Batch, logits: Tensor, step: int) -> None:
        """Draw each live row's token ``step`` from its own distribution and uniform; record it."""
        rows = [batch.rows[b] for b in batch.live]
        if len(rows) < len(batch.rows):
            live = torch.tensor(batch.live, device=self.device)
            logits = logits[live]
            temperature, top_p = batch.temperature[live], batch.top_p[live]
            uniforms = batch.uniforms[live, step]
        else:
            temperature, top_p = batch.temperature, batch.top_p
            uniforms = batch.uniforms[:, step]
        allowed = None
        if any(row.walk is not None for row in rows):
            allowed = torch.ones_like(logits, dtype=torch.bool)
            for i, row in enumerate(rows):
                if row.walk is not None:
                    row.allowed.append(tuple(row.walk.allowed()))
                    allowed[i] = False
                    allowed[i, list(row.allowed[-1])] = True
        logp = sampling_logprobs(logits, temperature, top_p, allowed)
        tokens = draw_tokens(logp, uniforms)
        chosen = logp.gather(1, tokens[:, None])[:, 0]
        for row, token, logprob in zip(rows, tokens.tolist(), chosen.tolist(), strict=True):
            row.tokens.append(token)
            row.logprobs.append(logprob)
            if row.walk is not None:
                row.walk.advance(token)

    def _stopped(self, row: _Row) -> bool:
        """Whether the row is done (marking it finished if it ended on a stop)."""
        if row.walk is not None:
            row.finished = row.walk.done
        else:
            row.finished = row.tokens[-1] in self.chat.stop_ids
        return row.finished or len(row.tokens) >= row.budget

    def _commit(self, row: _Row) -> GenerationResult:
        """Store the session's new state and build the result."""
        if row.replies is not None:
            text = row.replies[tuple(row.tokens)]
        else:
            text = reply_text(self.chat, row.tokens, row.finished)
        allowed = tuple(row.allowed) if row.walk is not None else None
        session, result = finish_turn(
            row.request, row.turn, row.tokens, row.logprobs, row.finished, text, allowed
        )
        session.kv, session.last_used = row.kv, self._clock
        self._sessions[row.request.session_id] = session
        return result

    def _evict(self) -> None:
        """Drop least recently used caches while over ``max_cache_tokens``."""
        if self.max_cache_tokens is None:
            return
        total = self.cached_tokens()
        for session in sorted(self._sessions.values(), key=lambda s: s.last_used):
            if total <= self.max_cache_tokens:
                return
            total -= kv_length(session.kv)
            session.kv = None

    @contextmanager
    def _eval_mode(self) -> Iterator[None]:
        """peft's mixed-adapter forward refuses training mode; restore the mode afterwards."""
        model = self.model
        if not model.training:
            yield
            return
        model.eval()
        try:
            yield
        finally:
            model.train()

    def _dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype
