"""Any detente agent behind an OpenAI-compatible chat-completions endpoint (``detente serve``).

``POST /v1/chat/completions`` answers with the agent's reply; ``GET /v1/models`` lists the agent.
Language-model agents (``lm:``, ``run:``, ``api:``) need only the messages (without the
extension a request is taken as a message turn of player 0). Scripted bots decide from the
game's structured events, which a request carries in the ``detente`` body extension
(``{"game", "player", "kind", "events"}``, events as written by :mod:`detente.games.codec`);
``ApiPolicy`` sends it to loopback servers. Sampling options other than ``seed`` are ignored.

Each HTTP request becomes its own ``Request`` (a fresh session, ended after the reply), and calls
into the policy are serialised (one worker thread, first come first served), so concurrent
requests share no mutable state.

**Limits** (``ServeLimits``; ``detente serve --max-...``): a body over ``max_body_bytes`` gets
413 before it is read further; more than ``max_messages`` messages or a prompt (all message
contents) over ``max_prompt_chars`` characters gets 400; a request that waited or ran for
``request_timeout`` seconds gets 503 (it never reached the agent) or 504; with ``max_pending``
requests already queued the next gets 503 at once (with ``Retry-After``). Every refusal, and
any other bad request (a last message that is not the user's, invalid Unicode, a bot request
without events, unknown routes), is a 4xx in the OpenAI error format
(``{"error": {"message", "type", "param", "code"}}``) that never reaches the agent, so it
costs other clients nothing; the connection stays usable.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI
from fastapi import Request as HttpRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from detente.games import game_type
from detente.games.base import Kind
from detente.games.codec import EventDecodeError, decode_events
from detente.policies.agents import make_agent
from detente.policies.api import is_loopback
from detente.policies.base import Policy, Reply, Request
from detente.policies.bots import Bot
from detente.protocol import Protocol, Style, make_protocol
from detente.rollout.runner import derive_seed

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


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat-completions request that matter here (others are ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(max_length=512)
    messages: list[ChatMessage] = Field(min_length=1)
    seed: int | None = None
    n: int = 1
    stream: bool = False
    detente: DetenteExtension | None = None


class ApiFailure(Exception):
    """An error answered in the OpenAI error format."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.code, self.retry_after = code, retry_after


def _error(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    retry_after: float | None = None,
) -> Response:
    """An OpenAI-format error; ASCII JSON, so no input text can make the encoding fail."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
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
) -> FastAPI:
    """The app serving ``policy`` for ``game``. With ``api_key``, requests must bear it; with
    ``constrain_moves``, move requests are sampled format-constrained where ``policy`` can.

    Requests without a ``seed`` get ``derive_seed(seed, n)`` for the n-th request served.
    """
    limits = limits or ServeLimits()
    app = FastAPI(title=f"detente: {policy.name}")
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    counter = itertools.count()
    agent = AgentQueue(policy, limits)

    @app.exception_handler(ApiFailure)
    async def _failure(_: HttpRequest, failure: ApiFailure) -> Response:
        return _error(failure.status, failure.message, failure.kind, failure.code,
                      failure.retry_after)  # fmt: skip

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

    @app.get("/v1/models")
    def models(http: HttpRequest) -> dict[str, Any]:
        check_key(http)
        card = {"id": policy.name, "object": "model", "created": 0, "owned_by": "detente"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat(http: HttpRequest) -> dict[str, Any]:
        check_key(http)
        body = parse_chat(await http.body(), limits)
        fallback_seed = derive_seed(seed, next(counter))
        request = _request(body, policy, game, protocol, fallback_seed)
        if constrain_moves and request.kind is Kind.MOVE and policy.supports_constrained:
            request = replace(request, constrained=True)
        reply = await agent.reply(request)
        prompt_tokens = reply.usage.get("prompt_tokens", 0)
        completion_tokens = reply.usage.get("completion_tokens", 0)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": policy.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    return app


class AgentQueue:
    """The policy behind one worker thread: requests reach it one at a time, first come first
    served, each bounded by ``request_timeout`` and the queue by ``max_pending``."""

    def __init__(self, policy: Policy, limits: ServeLimits) -> None:
        self.policy, self.limits = policy, limits
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="detente-agent")
        self._pending = 0  # submitted, not finished (a timed-out request may still run)
        self._lock = threading.Lock()

    async def reply(self, request: Request) -> Reply:
        timeout = self.limits.request_timeout
        with self._lock:
            if self._pending >= self.limits.max_pending:
                raise ApiFailure(
                    503, f"the server is busy ({self._pending} requests queued); retry later",
                    "server_error", "overloaded", retry_after=1,
                )  # fmt: skip
            self._pending += 1
        future = self._worker.submit(self._act, request)
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
                    400, f"{self.policy.name} cannot decide from these detente events "
                    f"({type(error).__name__}: {error})",
                ) from None  # fmt: skip
            logger.exception("%s failed on a request", self.policy.name)
            raise ApiFailure(
                500, f"the agent failed ({type(error).__name__})", "server_error"
            ) from None

    def _act(self, request: Request) -> Reply:
        try:
            (reply,) = self.policy.act([request])
        finally:
            self.policy.end_sessions([request.session_id])
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
        raise ApiFailure(400, f"invalid request: {_problems(error.errors())}") from None
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
    body: ChatRequest, policy: Policy, game: str, protocol: Protocol, fallback_seed: int
) -> Request:
    """The policy request of one HTTP request."""
    if body.model != policy.name:
        raise ApiFailure(
            404,
            f"model {body.model[:100]!r} is not served here; this serves {policy.name!r}",
            "not_found_error",
            "model_not_found",
        )
    if body.stream or body.n != 1:
        raise ApiFailure(400, "only n=1 without streaming is supported")
    extension = body.detente
    if extension is None and isinstance(policy, Bot):
        raise ApiFailure(
            400,
            f"{policy.name} is a scripted bot: it decides from the game's structured events, so "
            "the request must carry them in the `detente` extension of the body "
            "(ApiPolicy sends it with send_events=true, the default for loopback URLs)",
        )
    if extension is not None and extension.game != game:
        raise ApiFailure(400, f"this server plays {game!r}, the request is for {extension.game!r}")
    if extension is not None and extension.kind is Kind.MESSAGE and not game_type(game).has_messages:
        raise ApiFailure(400, f"{game} has no messages: the detente kind must be 'move'")
    try:
        events = tuple(decode_events(extension.events)) if extension else ()
    except EventDecodeError as error:
        raise ApiFailure(400, f"bad detente events: {error}") from None
    if isinstance(policy, Bot) and not events:
        raise ApiFailure(
            400, f"{policy.name} is a scripted bot: the detente events must hold at least the "
            "start of the game"
        )
    return Request(
        session_id=f"serve-{uuid.uuid4().hex}",
        game=game,
        player=extension.player if extension else 0,
        round=events[-1].round if events else 0,
        kind=extension.kind if extension else Kind.MESSAGE,
        messages=tuple({"role": m.role, "content": m.content} for m in body.messages),
        events=events,
        protocol=protocol,
        seed=body.seed if body.seed is not None else fallback_seed,
    )


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
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
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


def serve(
    agent: str,
    game: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    style: Style | str = Style.FULL,
    api_key_env: str | None = None,
    seed: int = 0,
    limits: ServeLimits | None = None,
    constrain_moves: bool = False,
) -> None:
    """Serve the agent ``agent`` (a spec) for ``game`` until interrupted; with
    ``constrain_moves``, moves (requests of kind move) are sampled format-constrained where the
    agent supports it (as runs trained with ``invalid.constrain_moves`` were).

    With ``api_key_env``, requests must bear the key held in that environment variable. The
    address is bound first: "serving at" is printed only once it is listening.
    """
    api_key = os.environ.get(api_key_env) if api_key_env else None
    if api_key_env and not api_key:
        raise ValueError(f"${api_key_env} (the server's API key) is not set")
    sock = bind(host, port)
    with sock, make_agent(agent, game) as policy:
        app = create_app(
            policy, game, make_protocol(game, style), api_key, seed, limits, constrain_moves
        )
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
        print(f"serving {policy.name} ({game}) at http://{shown}:{bound}/v1", flush=True)
        server.run(sockets=[sock])
