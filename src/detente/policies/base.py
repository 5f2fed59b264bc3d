"""Who acts: the batch interface shared by bots, language models, API models and people.

A policy receives a *batch* of requests (one per seat that must act now, across many games)
and returns one reply text per request. The rollout parses replies with the game's protocol, so
every policy, scripted ones included, goes through the same text formats.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Self

from detente.games.base import Event, Kind
from detente.protocol.base import Protocol


@dataclass(frozen=True)
class Request:
    """One decision of one seat: the chat so far and the structured events behind it."""

    session_id: str  # one seat of one game; stable across its turns
    game: str
    player: int
    round: int
    kind: Kind
    messages: tuple[dict[str, str], ...]  # whole chat so far, ends with the new user message
    events: tuple[Event, ...]  # every event this seat has observed (for scripted policies)
    protocol: Protocol
    seed: int  # sampling seed of this attempt
    constrained: bool = False  # ask for a format-constrained sample (if supported)


@dataclass(frozen=True)
class Reply:
    """A reply text, plus what a language model knows about how it was produced."""

    text: str
    prompt_ids: tuple[int, ...] = ()
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] = ()
    constrained: bool = False
    allowed: tuple[tuple[int, ...], ...] | None = None  # constrained: allowed token ids per step
    usage: dict[str, int] = field(default_factory=dict)
    # A stochastic scripted policy's whole reply distribution (reply text -> probability), of
    # which ``text`` is the draw; the warm start fits a model to it instead of to the draw.
    distribution: dict[str, float] | None = None


class Batcher(ABC):
    """Serves the requests of several policies in one call (e.g. the adapters of one
    language-model engine); a policy that has one is batched with its batcher's other
    policies."""

    @abstractmethod
    def act(self, pairs: Sequence[tuple[Any, Request]]) -> list[Reply]:
        """One reply per (policy, request) pair, in order."""


class Policy(ABC):
    """Answers batches of requests. ``name`` identifies it in tables and records; ``batcher``
    (None: the policy answers alone) serves it together with other policies."""

    name: str
    supports_constrained: bool = False
    batcher: Batcher | None = None
    overlapping: bool = False  # submit() returns at once and its calls may overlap (see there)

    @abstractmethod
    def act(self, requests: Sequence[Request]) -> list[Reply]:
        """One reply per request, in order."""

    def submit(self, requests: Sequence[Request]) -> Future[list[Reply]]:
        """The replies of :meth:`act`, as a future. An ``overlapping`` policy (e.g. HTTP calls
        on an event loop of its own) starts them and returns at once, takes more calls while
        some are in flight and bounds its own concurrency: the rollout then sends each request
        on its own, as soon as it is asked. The default answers with ``act`` before returning."""
        future: Future[list[Reply]] = Future()
        future.set_result(self.act(requests))
        return future

    def end_sessions(self, session_ids: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """Games are over: drop per-session state (e.g. KV caches). Default: none kept."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the policy holds (threads, connections). Default: nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PlayStopped(RuntimeError):
    """A policy stopped the games on purpose (e.g. a person typed ``/quit``). ``play`` fills
    ``records`` with the games as far as they went before passing it on."""

    records: list[Any] | None = None  # GameRecord, as far as each game went
