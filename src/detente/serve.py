"""Any detente agent behind an OpenAI-compatible chat-completions endpoint (``detente serve``).

``POST /v1/chat/completions`` answers with the agent's reply; ``GET /v1/models`` lists the agent.
Language-model agents (``lm:``, ``run:``, ``api:``) need only the messages (without the
extension a request is taken as a message turn of player 0). Scripted bots decide from the
game's structured events, which a request carries in the ``detente`` body extension
(``{"game", "player", "kind", "events"}``, events as written by :mod:`detente.games.codec`);
``ApiPolicy`` sends it to loopback servers. Sampling options other than ``seed`` are ignored.

Each HTTP request becomes its own ``Request`` (a fresh session, ended after the reply), and calls
into the policy are serialised by a lock, so concurrent requests share no mutable state.
"""

from __future__ import annotations

import itertools
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi import Request as HttpRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from detente.games.base import Kind
from detente.games.codec import EventDecodeError, decode_events
from detente.policies.agents import make_agent
from detente.policies.api import is_loopback
from detente.policies.base import Policy, Request
from detente.policies.bots import Bot
from detente.protocol import Protocol, Style, make_protocol
from detente.rollout.runner import derive_seed


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
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

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    seed: int | None = None
    n: int = 1
    stream: bool = False
    detente: DetenteExtension | None = None


class ApiFailure(Exception):
    """An error answered in the OpenAI error format."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _error(status: int, message: str, kind: str) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status)


def create_app(
    policy: Policy, game: str, protocol: Protocol, api_key: str | None = None, seed: int = 0
) -> FastAPI:
    """The app serving ``policy`` for ``game``. With ``api_key``, requests must bear it.

    Requests without a ``seed`` get ``derive_seed(seed, n)`` for the n-th request served.
    """
    app = FastAPI(title=f"detente: {policy.name}")
    lock = threading.Lock()
    counter = itertools.count()

    @app.exception_handler(ApiFailure)
    async def _failure(_: HttpRequest, failure: ApiFailure) -> JSONResponse:
        return _error(failure.status, failure.message, failure.kind)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: HttpRequest, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        return _error(400, f"invalid request: {problems}", "invalid_request_error")

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
    def chat(body: ChatRequest, http: HttpRequest) -> dict[str, Any]:
        check_key(http)
        fallback_seed = derive_seed(seed, next(counter))
        request = _request(body, policy, game, protocol, fallback_seed)
        with lock:
            (reply,) = policy.act([request])
            policy.end_sessions([request.session_id])
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


def _request(
    body: ChatRequest, policy: Policy, game: str, protocol: Protocol, fallback_seed: int
) -> Request:
    """The policy request of one HTTP request."""
    if body.model != policy.name:
        raise ApiFailure(
            404, f"model {body.model!r} is not served here; this serves {policy.name!r}"
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
    try:
        events = tuple(decode_events(extension.events)) if extension else ()
    except EventDecodeError as error:
        raise ApiFailure(400, f"bad detente events: {error}") from None
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


def serve(
    agent: str,
    game: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    style: Style | str = Style.FULL,
    api_key_env: str | None = None,
    seed: int = 0,
) -> None:
    """Serve the agent ``agent`` (a spec) for ``game`` until interrupted.

    With ``api_key_env``, requests must bear the key held in that environment variable.
    """
    api_key = os.environ.get(api_key_env) if api_key_env else None
    if api_key_env and not api_key:
        raise ValueError(f"${api_key_env} (the server's API key) is not set")
    policy = make_agent(agent, game)
    app = create_app(policy, game, make_protocol(game, style), api_key, seed)
    if not is_loopback(host):
        print(
            f"warning: listening on {host}, reachable from other machines"
            + ("" if api_key else " without an API key"),
            file=sys.stderr,
        )
    print(f"serving {policy.name} ({game}) at http://{host}:{port}/v1", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
