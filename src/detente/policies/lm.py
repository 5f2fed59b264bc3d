"""A language model plus an adapter name, behind the same batch interface as the bots.

Several ``LMPolicy`` objects (the live adapter, past checkpoints, the base model) share one
``LMBatcher`` per engine, so the rollout serves all of them in one engine call per step.
"""

from __future__ import annotations

from collections.abc import Sequence

from detente.games.base import Kind
from detente.lm.types import GenerationEngine, GenerationRequest, SamplingParams
from detente.policies.base import Batcher, Policy, Reply, Request


class LMBatcher(Batcher):
    """Turns (policy, request) pairs from any adapters of one engine into one ``generate`` call."""

    def __init__(
        self,
        engine: GenerationEngine,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_message_tokens: int = 96,
        max_move_tokens: int = 16,
    ) -> None:
        self.engine = engine
        self.sampling = {
            Kind.MESSAGE: SamplingParams(temperature, top_p, max_message_tokens),
            Kind.MOVE: SamplingParams(temperature, top_p, max_move_tokens),
        }

    @classmethod
    def with_sampling(
        cls, engine: GenerationEngine, sampling: dict[Kind, SamplingParams]
    ) -> LMBatcher:
        """A batcher over ``engine`` sampling as ``sampling`` says (e.g. another batcher's)."""
        batcher = cls(engine)
        batcher.sampling = dict(sampling)
        return batcher

    def act(self, pairs: Sequence[tuple[LMPolicy, Request]]) -> list[Reply]:
        requests = [
            GenerationRequest(
                session_id=f"{policy.name}|{request.session_id}",
                messages=request.messages,
                adapter=policy.adapter,
                seed=request.seed,
                sampling=self.sampling[request.kind],
                allowed_replies=(
                    request.protocol.allowed_replies(request.kind, request.events)
                    if request.constrained
                    else None
                ),
            )
            for policy, request in pairs
        ]
        return [
            Reply(
                text=result.text,
                prompt_ids=result.prompt_ids,
                token_ids=result.token_ids,
                logprobs=result.logprobs,
                constrained=result.constrained,
                allowed=result.allowed,
                usage={"prompt_tokens": len(result.prompt_ids), "completion_tokens": len(result.token_ids)},
            )
            for result in self.engine.generate(requests)
        ]


class LMPolicy(Policy):
    """Replies sampled from ``engine`` with ``adapter`` (None = the base model).

    The adapter must be in the engine when the policy acts (the engine raises otherwise), not
    when it is made: a pool snapshot is loaded just before the games that draw it are played.
    """

    def __init__(self, batcher: LMBatcher, adapter: str | None, name: str) -> None:
        self.batcher = batcher
        self.adapter = adapter
        self.name = name

    @property
    def supports_constrained(self) -> bool:  # type: ignore[override]
        return self.batcher.engine.supports_constrained

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        return self.batcher.act([(self, r) for r in requests])

    def end_sessions(self, session_ids: Sequence[str]) -> None:
        self.batcher.engine.end_sessions([f"{self.name}|{s}" for s in session_ids])
