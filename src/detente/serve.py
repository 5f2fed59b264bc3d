"""Any detente agent behind an OpenAI-compatible chat-completions endpoint (``detente serve``).

``POST /v1/chat/completions`` answers with the agent's reply; ``GET /v1/models`` lists the agent
(its card's ``aliases`` are the other names it answers to: see :func:`model_names`).

**A plain client is enough.** The messages are the seat's chat as the rollout writes it: the
rules (system), the observations (user) and the seat's earlier replies (assistant). The server
reads the seat, the decision asked for and the game's events back from it by replaying the game
(:mod:`detente.chat_replay`), so a scripted bot, which decides from the events, needs nothing
else, and a language model gets a move request sampled as moves are (the run's move budget and,
with ``constrain_moves``, constrained to the legal replies). A chat that cannot be read gets 400
for a bot; a language model then answers it as the kind of decision its last line asks for.
**The** ``detente`` **body extension** (``{"game", "player", "kind", "events"}``, events as
written by :mod:`detente.games.codec`) is an optional fast path that skips the replay, and the
only way for bots of games that deal private values at random; ``ApiPolicy`` sends it to
loopback servers.

**Sampling parameters** are honoured or refused, never ignored: a language model (``lm:``,
``run:``) samples with the request's ``temperature`` and ``top_p`` (default: the run's own),
and ``max_tokens`` (or ``max_completion_tokens``) lowers its reply budget, never raises it; a reply
cut there has ``finish_reason`` ``"length"``, and a constrained move, which always completes,
longer than ``max_tokens`` gets 400. Other agents (bots, ``api:``) play their own policy: they
accept ``temperature`` and ``top_p`` only as 1 (or absent), and cut a reply at ``max_tokens``
characters (flagged ``"length"``: that many ASCII characters are at most that many tokens).
``seed`` seeds the reply; ``stream=true`` sends it as server-sent events; ``n`` must be 1;
``stop``, penalties, ``logit_bias``, ``logprobs``, tools and ``response_format`` other than text
get 400. Other fields (``user``, ``metadata``, ...) are ignored.

Each HTTP request becomes its own ``Request`` (a fresh session, ended after the reply), and calls
into the policy are serialised (one worker thread, first come first served), so concurrent
requests share no mutable state.

**Limits** (``ServeLimits``; ``detente serve --max-...``): a body over ``max_body_bytes`` gets
413 before it is read further; more than ``max_messages`` messages or a prompt (all message
contents) over ``max_prompt_chars`` characters gets 400; a request that waited or ran for
``request_timeout`` seconds gets 503 (it never reached the agent) or 504; with ``max_pending``
requests already queued the next gets 503 at once (with ``Retry-After``). Every refusal, and
any other bad request (a last message that is not the user's, invalid Unicode, a bot request
whose chat cannot be read, unknown routes), is a 4xx in the OpenAI error format
(``{"error": {"message", "type", "param", "code"}}``) that never reaches the agent, so it
costs other clients nothing; the connection stays usable.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

import uvicorn
from fastapi import FastAPI
from fastapi import Request as HttpRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from detente.agents import PlaySettings, make_agent
from detente.chat_replay import ChatUnreadable, Seat, read_chat
from detente.games import GameConfig, game_type, make_config
from detente.games.base import Kind
from detente.games.codec import EventDecodeError, decode_events
from detente.policies.api import is_loopback
from detente.policies.base import Policy, Reply, Request
from detente.policies.bots import Bot
from detente.protocol import Protocol, make_protocol
from detente.rollout.runner import derive_seed
from detente.suggest import did_you_mean

if TYPE_CHECKING:
    from detente.policies.lm import LMPolicy

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask of the server; past a limit it is refused before the agent.

    The prompt bound keeps one request from holding the agent for long: on a 2-core CPU
    ``lm:tiny`` took 0.5 s for 4,000 characters, 7 s for 16,000 and 42 s for 32,000 (a 10-round
    full-style Trust-and-Split game with 96-token messages is about 15,000); raise it for a
    model with long replies on a GPU."""

    max_body_bytes: int = 1 << 20  # 1 MiB: 413 past it
    max_messages: int = 512  # 400 past it
    max_prompt_chars: int = 16_000  # all message contents (~4K tokens); 400 past it
    request_timeout: float = 120.0  # seconds from arrival: 503 if still queued, 504 if running
    max_pending: int = 64  # requests queued or at the agent; the next gets 503 at once

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_messages", "max_prompt_chars", "max_pending"):
            if getattr(self, name) < 1:
                raise ValueError(f"serve limit {name} must be at least 1")
        if not 0 < self.request_timeout < float("inf"):
            raise ValueError("serve limit request_timeout must be a positive number of seconds")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"]
    content: str


class DetenteExtension(BaseModel):
    """What a scripted bot needs besides the chat: the seat and its structured events."""

    model_config = ConfigDict(extra="forbid")

    game: str
    player: int = Field(ge=0, le=1)
    kind: Kind
    events: list[Any]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat-completions request that matter here (see
    ``UNHONOURED`` for those refused; others are ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(max_length=512)
    messages: list[ChatMessage] = Field(min_length=1)
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    detente: DetenteExtension | None = None


# Request parameters no agent here can honour, with the values that ask nothing of it.
UNHONOURED: dict[str, tuple[Any, ...]] = {
    "stop": (None, "", []),
    "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
    "logit_bias": (None, {}),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "tools": (None, []),
    "tool_choice": (None, "none", "auto"),
    "functions": (None, []),
    "function_call": (None, "none", "auto"),
    "response_format": (None, {"type": "text"}),
}


class ApiFailure(Exception):
    """An error answered in the OpenAI error format (``param``: the request field at fault)."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        retry_after: float | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.code, self.retry_after, self.param = code, retry_after, param


def _error(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    retry_after: float | None = None,
    param: str | None = None,
) -> Response:
    """An OpenAI-format error; ASCII JSON, so no input text can make the encoding fail."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else None
    return Response(json.dumps(body), status, headers, media_type="application/json")


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` (declared or streamed) gets 413 and is
    not read further; a body within the limit is read whole, then passed on."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await _send(send, _error(400, "bad Content-Length header", "invalid_request_error"))
            return
        if declared is not None and int(declared) > self.max_bytes:
            await _send(send, self._too_large())
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send(send, self._too_large())
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> Response:
        return _error(
            413,
            f"request body too large: this server accepts at most {self.max_bytes} bytes",
            "invalid_request_error",
            "request_too_large",
        )


async def _send(send: Send, response: Response) -> None:
    await send(
        {"type": "http.response.start", "status": response.status_code,
         "headers": response.raw_headers}
    )  # fmt: skip
    await send({"type": "http.response.body", "body": response.body})


def create_app(
    policy: Policy,
    game: str,
    protocol: Protocol,
    api_key: str | None = None,
    seed: int = 0,
    limits: ServeLimits | None = None,
    constrain_moves: bool = False,
    config: GameConfig | None = None,
    aliases: Sequence[str] = (),
) -> FastAPI:
    """The app serving ``policy`` for ``game`` (with options ``config``: default, the game's
    defaults; chats are read with them and ``protocol``). With ``api_key``, requests must bear
    it; with ``constrain_moves``, move requests are sampled format-constrained where ``policy``
    can; ``aliases`` are more names the model answers to.

    Requests without a ``seed`` get ``derive_seed(seed, n)`` for the n-th request served.
    """
    limits = limits or ServeLimits()
    config = config or make_config(game, {})
    app = FastAPI(title=f"detente: {policy.name}")
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    counter = itertools.count()
    agent = AgentQueue(policy, limits)
    names = model_names(policy.name, aliases)
    card = {"id": policy.name, "object": "model", "created": 0, "owned_by": "detente",
            "aliases": list(names[1:])}  # fmt: skip

    @app.exception_handler(ApiFailure)
    async def _failure(_: HttpRequest, failure: ApiFailure) -> Response:
        return _error(failure.status, failure.message, failure.kind, failure.code,
                      failure.retry_after, failure.param)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: HttpRequest, error: RequestValidationError) -> Response:
        return _error(400, f"invalid request: {_problems(error.errors())}", "invalid_request_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: HttpRequest, error: StarletteHTTPException) -> Response:
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return _error(error.status_code, str(error.detail), kind)

    def check_key(http: HttpRequest) -> None:
        if api_key is None:
            return
        bearer = http.headers.get("authorization", "").encode()
        if not secrets.compare_digest(bearer, f"Bearer {api_key}".encode()):
            raise ApiFailure(401, "missing or wrong API key", "authentication_error")

    def check_model(model: str) -> None:
        if model not in names:
            raise ApiFailure(
                404,
                f"model {model[:100]!r} is not served here{did_you_mean(model, names)}; this "
                f"serves {policy.name!r}" + (f" (also as {', '.join(names[1:])})"
                                             if len(names) > 1 else ""),
                "not_found_error", "model_not_found", param="model",
            )  # fmt: skip

    @app.get("/v1/models")
    def models(http: HttpRequest) -> dict[str, Any]:
        check_key(http)
        return {"object": "list", "data": [card]}

    @app.get("/v1/models/{model:path}")
    def model(http: HttpRequest, model: str) -> dict[str, Any]:
        check_key(http)
        check_model(model)
        return card

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(http: HttpRequest) -> Response:
        check_key(http)
        body = parse_chat(await http.body(), limits)
        check_model(body.model)
        sampling = Sampling.of(body)
        fallback_seed = derive_seed(seed, next(counter))
        # Reading the chat replays the game: off the event loop, which keeps serving others.
        request = await asyncio.to_thread(
            _request, body, policy, game, config, protocol, fallback_seed
        )
        if constrain_moves and request.kind is Kind.MOVE and policy.supports_constrained:
            request = replace(request, constrained=True)
        sampler = Sampler.for_policy(policy, request.kind, sampling)
        reply = await agent.reply(request, sampler.policy)
        text, finish_reason = sampler.finish(reply)
        prompt_tokens = reply.usage.get("prompt_tokens", 0)
        completion_tokens = reply.usage.get("completion_tokens", 0)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()),
                "model": policy.name}  # fmt: skip
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            events = _stream(head, text, finish_reason, usage if include_usage else None)
            return StreamingResponse(
                events, media_type="text/event-stream", headers={"cache-control": "no-cache"}
            )
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_reason,
            "logprobs": None,
        }
        completion = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        return Response(json.dumps(completion), media_type="application/json")

    return app


def model_names(name: str, aliases: Sequence[str] = ()) -> tuple[str, ...]:
    """The names an agent is served under: its name (listed in ``/v1/models``), then the
    argument of its spec (``tit-for-tat`` for ``bot:tit-for-tat``), for a path the last folder
    with its ``@ITERATION``, bare and with the kind (``ipd-s0``, ``run:ipd-s0`` for
    ``run:runs/ipd-s0``), then ``aliases`` (``detente serve --alias``)."""
    kind, _, argument = name.partition(":")
    names = [name, argument]
    path, at, iteration = argument.partition("@")
    if "/" in path and (not at or iteration.isdigit()):
        folder = PurePath(path).name + at + iteration
        names += [folder, f"{kind}:{folder}"]
    return tuple(dict.fromkeys(n for n in [*names, *aliases] if n))


@dataclass(frozen=True)
class Sampling:
    """What a request asks of the sampler; None: the agent's own."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None

    @classmethod
    def of(cls, body: ChatRequest) -> Sampling:
        """The request's sampling parameters, or 400 for one that cannot be honoured."""
        extra = body.model_extra or {}
        for name, neutral in UNHONOURED.items():
            if name in extra and extra[name] not in neutral:
                raise ApiFailure(
                    400, f"{name} is not supported here: a detente agent's reply is one "
                    "chat message in its game's format", code="unsupported_parameter", param=name,
                )  # fmt: skip
        if body.n != 1:
            raise ApiFailure(400, "only n=1 is supported", param="n")
        caps = {body.max_tokens, body.max_completion_tokens} - {None}
        if len(caps) > 1:
            raise ApiFailure(
                400, "max_tokens and max_completion_tokens differ: send one",
                param="max_completion_tokens",
            )  # fmt: skip
        return cls(body.temperature, body.top_p, caps.pop() if caps else None)


class Sampler:
    """How one request is sampled: the policy to ask (a language model: a copy sampling as
    the request says) and how to finish its reply (cut at ``max_tokens``, the finish reason)."""

    def __init__(self, policy: Policy, sampling: Sampling) -> None:
        self.policy, self.sampling = policy, sampling

    @staticmethod
    def for_policy(policy: Policy, kind: Kind, sampling: Sampling) -> Sampler:
        model = _language_model(policy)
        if model is not None:
            return _ModelSampler(model, kind, sampling)
        for name in ("temperature", "top_p"):
            value = getattr(sampling, name)
            if value is not None and value != 1:
                raise ApiFailure(
                    400, f"{policy.name} plays its own policy and cannot sample at "
                    f"{name}={value:g}: send {name}=1 or leave it out",
                    code="unsupported_parameter", param=name,
                )  # fmt: skip
        return Sampler(policy, sampling)

    def finish(self, reply: Reply) -> tuple[str, str]:
        """The reply's text and finish reason: a reply over ``max_tokens`` characters is cut
        there (``"length"``)."""
        cap = self.sampling.max_tokens
        if cap is not None and len(reply.text) > cap:
            return reply.text[:cap], "length"
        return reply.text, "stop"


def _language_model(policy: Policy) -> LMPolicy | None:
    """``policy`` if it is a language model whose sampling can be set per request. Its module
    is loaded once such a policy exists, so a bot's server never imports torch for this."""
    lm = sys.modules.get("detente.policies.lm")
    return policy if lm is not None and isinstance(policy, lm.LMPolicy) else None


class _ModelSampler(Sampler):
    """A language model sampled with the request's temperature and top-p (default: its own)
    and its own reply budget lowered to ``max_tokens``; the engine says whether the reply ended
    on a stop token (else it was cut: ``"length"``)."""

    def __init__(self, model: LMPolicy, kind: Kind, sampling: Sampling) -> None:
        from detente.lm.types import SamplingParams
        from detente.policies.lm import LMBatcher, LMPolicy

        own = model.batcher.sampling[kind]
        self.params = SamplingParams(
            own.temperature if sampling.temperature is None else sampling.temperature,
            own.top_p if sampling.top_p is None else sampling.top_p,
            min(own.max_new_tokens, sampling.max_tokens or own.max_new_tokens),
        )
        self.engine = _Watched(model.batcher.engine)
        sampling_by_kind = {**model.batcher.sampling, kind: self.params}
        batcher = LMBatcher.with_sampling(self.engine, sampling_by_kind)
        super().__init__(LMPolicy(batcher, model.adapter, model.name), sampling)

    def finish(self, reply: Reply) -> tuple[str, str]:
        cap = self.sampling.max_tokens
        if cap is not None and len(reply.token_ids) > cap:  # only a constrained move runs over
            raise ApiFailure(
                400, f"max_tokens={cap} is less than this move's {len(reply.token_ids)} tokens: "
                "moves are sampled constrained to the legal replies and always complete; raise "
                "max_tokens", param="max_tokens",
            )  # fmt: skip
        return reply.text, "stop" if reply.constrained or all(self.engine.finished) else "length"


class _Watched:
    """An engine that keeps, of its last call, whether each reply ended on a stop token."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.finished = engine, [True]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        results = self.engine.generate(requests)
        self.finished = [result.finished for result in results]
        return results


def _stream(
    head: dict[str, Any], text: str, finish_reason: str, usage: dict[str, int] | None
) -> Iterator[str]:
    """The reply as OpenAI server-sent events: the role, the text word by word (the reply is
    made whole: the pieces are transport only), the finish reason, the usage when asked for
    (``stream_options.include_usage``), then ``[DONE]``."""
    chunk = {**head, "object": "chat.completion.chunk"}
    if usage is not None:
        chunk["usage"] = None

    def event(choices: list[dict[str, Any]], **more: Any) -> str:
        return f"data: {json.dumps({**chunk, 'choices': choices, **more})}\n\n"

    def choice(delta: dict[str, str], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]

    yield event(choice({"role": "assistant", "content": ""}))
    for piece in re.split(r"(?<=\s)(?=\S)", text):
        if piece:
            yield event(choice({"content": piece}))
    yield event(choice({}, finish_reason))
    if usage is not None:
        yield event([], usage=usage)
    yield "data: [DONE]\n\n"


class AgentQueue:
    """The policy behind one worker thread: requests reach it one at a time, first come first
    served, each bounded by ``request_timeout`` and the queue by ``max_pending``."""

    def __init__(self, policy: Policy, limits: ServeLimits) -> None:
        self.policy, self.limits = policy, limits
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="detente-agent")
        self._pending = 0  # submitted, not finished (a timed-out request may still run)
        self._lock = threading.Lock()

    async def reply(self, request: Request, policy: Policy | None = None) -> Reply:
        """The reply of ``policy`` (default: the queue's; e.g. a copy sampling otherwise)."""
        timeout = self.limits.request_timeout
        with self._lock:
            if self._pending >= self.limits.max_pending:
                raise ApiFailure(
                    503, f"the server is busy ({self._pending} requests queued); retry later",
                    "server_error", "overloaded", retry_after=1,
                )  # fmt: skip
            self._pending += 1
        future = self._worker.submit(self._act, policy or self.policy, request)
        future.add_done_callback(self._finished)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            if future.cancel() or future.cancelled():  # it never reached the agent
                raise ApiFailure(
                    503, f"the server is busy: the request waited {timeout:g} s for the agent",
                    "server_error", "overloaded", retry_after=1,
                ) from None  # fmt: skip
            raise ApiFailure(
                504, f"the agent did not answer within {timeout:g} s", "server_error", "timeout"
            ) from None
        except ApiFailure:
            raise
        except Exception as error:  # the agent failed on this request
            if isinstance(self.policy, Bot):  # a bot decides from the client's events only
                raise ApiFailure(
                    400, f"{self.policy.name} cannot decide from the request's events "
                    f"({type(error).__name__}: {error})",
                ) from None  # fmt: skip
            logger.exception("%s failed on a request", self.policy.name)
            raise ApiFailure(
                500, f"the agent failed ({type(error).__name__})", "server_error"
            ) from None

    @staticmethod
    def _act(policy: Policy, request: Request) -> Reply:
        try:
            (reply,) = policy.act([request])
        finally:
            policy.end_sessions([request.session_id])
        return reply

    def _finished(self, _: Future) -> None:
        with self._lock:
            self._pending -= 1


def _problems(errors: Any) -> str:
    """Validation errors as ``location: message`` (never the input values)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)


def _lone_surrogate(data: Any) -> str | None:
    """The location of the first string in ``data`` that is not valid Unicode, or None."""
    stack: list[tuple[Any, str]] = [(data, "body")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(value, dict):
            stack.extend((v, f"{where}.{k}") for k, v in value.items())
            stack.extend((k, f"{where} (a key)") for k in value if isinstance(k, str))
        elif isinstance(value, list):
            stack.extend((v, f"{where}.{i}") for i, v in enumerate(value))
    return None


def parse_chat(raw: bytes, limits: ServeLimits) -> ChatRequest:
    """The request body, checked: JSON, valid Unicode, the schema, the limits, a user turn last."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ApiFailure(400, f"the body is not valid JSON ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise ApiFailure(400, "the body must be a JSON object")
    where = _lone_surrogate(data)
    if where is not None:
        raise ApiFailure(400, f"{where}: not valid Unicode (a lone surrogate)")
    messages = data.get("messages")
    if isinstance(messages, list) and len(messages) > limits.max_messages:
        raise ApiFailure(
            400, f"{len(messages)} messages: this server accepts at most {limits.max_messages}",
            code="too_many_messages",
        )  # fmt: skip
    try:
        body = ChatRequest.model_validate(data)
    except ValidationError as error:
        problems = error.errors()
        where = problems[0]["loc"] if problems else ()
        raise ApiFailure(
            400, f"invalid request: {_problems(problems)}", param=".".join(map(str, where)) or None
        ) from None
    chars = sum(len(m.content) for m in body.messages)
    if chars > limits.max_prompt_chars:
        raise ApiFailure(
            400, f"the prompt has {chars} characters: this server accepts at most "
            f"{limits.max_prompt_chars}", code="context_length_exceeded",
        )  # fmt: skip
    if body.messages[-1].role != "user":
        raise ApiFailure(
            400, f"the last message must be the user's, not {body.messages[-1].role!r}: the "
            "agent answers a user turn",
        )  # fmt: skip
    return body


def _request(
    body: ChatRequest,
    policy: Policy,
    game: str,
    config: GameConfig,
    protocol: Protocol,
    fallback_seed: int,
) -> Request:
    """The policy request of one HTTP request."""
    messages = tuple({"role": m.role, "content": m.content} for m in body.messages)
    seat = _extension_seat(body.detente, policy, game, config)
    if seat is None:
        seat = _chat_seat(messages, policy, game, config, protocol)
    return Request(
        session_id=f"serve-{uuid.uuid4().hex}",
        game=game,
        player=seat.player,
        round=seat.events[-1].round if seat.events else 0,
        kind=seat.kind,
        messages=messages,
        events=seat.events,
        protocol=protocol,
        seed=body.seed if body.seed is not None else fallback_seed,
    )


def _extension_seat(
    extension: DetenteExtension | None, policy: Policy, game: str, config: GameConfig
) -> Seat | None:
    """The seat the ``detente`` extension names (None without one), checked."""
    if extension is None:
        return None
    if extension.game != game:
        raise ApiFailure(400, f"this server plays {game!r}, the request is for {extension.game!r}")
    if extension.kind is Kind.MESSAGE and not game_type(game).describe(config).messages:
        raise ApiFailure(400, f"{game} has no messages: the detente kind must be 'move'")
    try:
        events = tuple(decode_events(extension.events))
    except EventDecodeError as error:
        raise ApiFailure(400, f"bad detente events: {error}") from None
    if isinstance(policy, Bot) and not events:
        raise ApiFailure(
            400, f"{policy.name} is a scripted bot: the detente events must hold at least the "
            "start of the game"
        )  # fmt: skip
    return Seat(extension.player, extension.kind, events)


def _chat_seat(
    messages: Sequence[dict[str, str]],
    policy: Policy,
    game: str,
    config: GameConfig,
    protocol: Protocol,
) -> Seat:
    """The seat read from the chat by replaying the game. A bot needs it (400 otherwise); a
    language model only needs the kind of decision, then read from the last user message."""
    try:
        return read_chat(messages, game, config, protocol)
    except ChatUnreadable as error:
        if isinstance(policy, Bot):
            raise ApiFailure(
                400, f"{policy.name} is a scripted bot: it decides from the game's events, read "
                f"from the chat, but {error}. Send the chat as the game shows it, or the events "
                "in the `detente` extension of the body (ApiPolicy sends it to loopback URLs)",
                code="chat_unreadable", param="messages",
            ) from None  # fmt: skip
    return Seat(0, asked_kind(messages[-1]["content"], game, config, protocol), ())


def asked_kind(prompt: str, game: str, config: GameConfig, protocol: Protocol) -> Kind:
    """The decision a user message asks for: of a game without messages (under ``config``), a
    move; else the kind whose instruction comes last in it (none: a message, free text)."""
    if not game_type(game).describe(config).messages:
        return Kind.MOVE
    found = {kind: prompt.rfind(protocol.instruction(kind)) for kind in Kind}
    kind = max(found, key=lambda k: found[k])
    return kind if found[kind] >= 0 else Kind.MESSAGE


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` (any ASGI app) in a background thread; yield its base URL (``.../v1``).

    Port 0 picks a free port. The server stops when the block exits.
    """
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="detente-serve", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{f'[{host}]' if ':' in host else host}:{bound_port}/v1"
    finally:
        server.should_exit = True
        thread.join()


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), or a one-line error naming them."""
    if not 0 <= port <= 65535:
        raise ValueError(f"--port {port}: a port is a number in 0..65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise RuntimeError(f"cannot listen on {host}:{port}: {error}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return sock


def agent_app(
    policy: Policy,
    game: str,
    settings: PlaySettings,
    api_key: str | None = None,
    seed: int = 0,
    limits: ServeLimits | None = None,
    aliases: Sequence[str] = (),
) -> FastAPI:
    """:func:`create_app` for ``policy`` playing as ``settings`` say (e.g. ``as_trained``: the
    run's prompt style, move constraint and game options)."""
    config = make_config(game, settings.options)
    protocol = make_protocol(game, settings.style, config)
    return create_app(
        policy, game, protocol, api_key, seed, limits, settings.constrain_moves, config, aliases
    )


def serve(
    agent: str,
    game: str,
    settings: PlaySettings,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key_env: str | None = None,
    seed: int = 0,
    limits: ServeLimits | None = None,
    aliases: Sequence[str] = (),
) -> None:
    """Serve the agent ``agent`` (a spec) for ``game`` until interrupted, playing as
    ``settings`` say (prompt style, moves format-constrained where the agent supports it, game
    options: as a run was trained, from ``as_trained``).

    With ``api_key_env``, requests must bear the key held in that environment variable. The
    address is bound first: "serving at" is printed only once it is listening.
    """
    api_key = os.environ.get(api_key_env) if api_key_env else None
    if api_key_env and not api_key:
        raise ValueError(f"${api_key_env} (the server's API key) is not set")
    sock = bind(host, port)
    with sock, make_agent(agent, game) as policy:
        app = agent_app(policy, game, settings, api_key, seed, limits, aliases)
        if not is_loopback(host):
            print(
                f"warning: listening on {host}, reachable from other machines"
                + ("" if api_key else " without an API key"),
                file=sys.stderr,
            )
        config = uvicorn.Config(app, log_level="info", access_log=False)
        server = uvicorn.Server(config)
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        names = model_names(policy.name, aliases)
        also = f" (also as {', '.join(names[1:])})" if len(names) > 1 else ""
        print(f"serving {policy.name}{also} ({game}) at http://{shown}:{bound}/v1", flush=True)
        server.run(sockets=[sock])
