"""The request/result records exchanged with an engine (one batch per call, one record per seat)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one reply.

    ``temperature`` 0 means greedy decoding (each returned log-prob is then 0: the point mass that
    was "sampled"); ``top_p`` < 1 keeps the smallest set of tokens with that much probability.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64

    def __post_init__(self) -> None:
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be finite and >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class GenerationRequest:
    """One reply wanted from one conversation (a seat of a game).

    ``messages`` is the whole chat so far and ends with a non-assistant message. A session's next
    call must extend its previous call's ``messages`` by the assistant reply exactly as returned
    (``GenerationResult.text``) plus new messages; a call with the *same* ``messages`` re-samples
    (the previous reply is discarded). ``adapter`` None means the base model; a session always
    uses the same adapter. ``allowed_replies``, if set, constrains the reply to exactly one of
    these strings (``max_new_tokens`` is then ignored: the reply always completes).
    """

    session_id: str
    messages: tuple[dict[str, str], ...]
    adapter: str | None
    seed: int
    sampling: SamplingParams = field(default_factory=SamplingParams)
    allowed_replies: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError(f"session {self.session_id!r}: empty messages")
        if self.messages[-1].get("role") == "assistant":
            raise ValueError(f"session {self.session_id!r}: messages end with an assistant turn")
        if self.allowed_replies is not None and not self.allowed_replies:
            raise ValueError(f"session {self.session_id!r}: allowed_replies is empty")


@dataclass(frozen=True)
class GenerationResult:
    """The reply to one request, with the exact tokens for teacher-forced re-scoring.

    Over a session's calls (leaving out calls that were re-sampled), ``prompt_ids + token_ids``
    concatenate to exactly the token sequence the model has seen. ``logprobs[k]`` is the log-prob
    of ``token_ids[k]`` under the distribution actually sampled from (temperature, top-p and the
    reply constraint applied, renormalised). For a constrained reply, ``allowed[k]`` lists the
    token ids the constraint allowed at step k (None for an unconstrained reply), so that a
    trainer can score the reply under the same constraint.
    """

    text: str
    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finished: bool
    constrained: bool
    allowed: tuple[tuple[int, ...], ...] | None = None


@dataclass(frozen=True)
class AdapterSnapshot:
    """A LoRA adapter's weights as plain data, to copy it into another engine (a replica).

    ``config`` is peft's ``LoraConfig`` as a dict; ``weights`` is peft's state dict of the
    adapter (keys without the adapter name), on the CPU.
    """

    config: dict[str, Any]
    weights: dict[str, Tensor]


class GenerationEngine(Protocol):
    """What the rollout needs from an engine: batched generation with named adapters, adapters
    copied in from another engine, and memory released while a learner trains."""

    supports_constrained: bool  # honours ``GenerationRequest.allowed_replies``

    def adapter_names(self) -> list[str]: ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...

    def end_sessions(self, session_ids: Sequence[str]) -> None: ...

    def put_adapter(self, name: str, snapshot: AdapterSnapshot) -> None:
        """Create or overwrite adapter ``name`` (frozen) with these weights."""
        ...

    def delete_adapter(self, name: str) -> None: ...

    def sleep(self) -> None:
        """Release what generation holds (caches; for vLLM also the weights) until ``wake``."""
        ...

    def wake(self) -> None: ...
