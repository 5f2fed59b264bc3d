"""A model behind an OpenAI-compatible chat-completions API (spec ``api:MODEL@BASE_URL``).

``act`` is synchronous; it runs the whole batch concurrently (at most ``concurrency`` HTTP calls
in flight) with the official ``openai`` async client, on an event loop that the policy keeps in
a daemon thread, so the client and its connections are reused from one call to the next.
``submit`` starts a batch and returns a future at once (the policy is ``overlapping``): the
rollout sends each decision as soon as it is asked, so one decision's retries hold up no other,
and every call in flight shares the ``concurrency`` bound. Per request:

* **transport retries**: 408/409/429/5xx, timeouts and connection errors are retried with
  exponential backoff (equal jitter from a RNG seeded by the request's seed; a ``Retry-After``
  header wins), bounded by ``max_tries`` HTTP calls and ``max_seconds`` for the whole decision;
* **format retries**: a reply that ``protocol.parse`` rejects is re-asked up to ``format_retries``
  times in the same chat, with the invalid reply and a note giving the exact format appended;
* a 200 reply that is not a completion (an HTML page, ``{}``, no ``choices``, broken JSON) is a
  transient failure of that call, like a 5xx;
* when that budget is spent the reply is the last text received (or empty): the runner flags it
  invalid and the run goes on. Any other 4xx (bad key, unknown model, malformed request) is a
  configuration error and raises ``ApiError``.

A **circuit breaker** watches the endpoint: after ``max_failures`` failed calls in a row (any
decisions; a completion resets the count) the policy raises ``ApiUnavailable`` (``on_failure=stop``,
the default), so a dead or rate-limiting server stops the run in seconds instead of playing it
out with default moves; with ``on_failure=continue`` each later completion gets one call (no
retries, no backoff) until one succeeds, and the decisions that got no reply are counted
(``usage["gave_up"]``, per agent in face-off results).

The spec's URL is taken literally: ``MODEL@URL`` needs a URL with its scheme (``http://`` or
``https://``); anything else after an ``@`` is an error, never the default endpoint, which is
used only for a spec without ``@``. A URL's user, password and query never appear in the
policy's name (tables, JSON, transcripts) or in errors.

``Reply.usage`` holds ``prompt_tokens`` and ``completion_tokens`` (summed over every HTTP call
of the decision), ``format_retries``, ``transport_retries`` and ``gave_up`` (0 or 1).

The key is read from the environment variable ``key_env`` before each HTTP call (placeholder
"none" when unset, for local servers); it is never logged, recorded or put in a reply. To
servers on a loopback address the client also sends the seat's structured events in the
``detente`` body extension, so ``detente serve`` can serve scripted bots (``send_events`` forces
it on or off).

The client runs on an event loop in a thread of its own; ``close()`` (or ``with policy:``) stops
both and releases the connections.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import logging
import os
import random
import re
import threading
import weakref
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from openai import APIConnectionError, APIError, APIStatusError, AsyncOpenAI
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detente.games.codec import encode_events
from detente.policies.base import Policy, Reply, Request
from detente.protocol.base import InvalidReply

logger = logging.getLogger(__name__)

EXTENSION = "detente"  # request-body key of the structured-events extension
TRANSIENT_STATUS = frozenset({408, 409, 429})  # and every 5xx
DEFAULT_BASE_URL = "https://api.openai.com/v1"
URL_AFTER_AT = re.compile(r"@(?=[A-Za-z][A-Za-z0-9+.-]*://)")  # an '@' followed by SCHEME://
SPEC_FORM = "MODEL[@BASE_URL][#key=value&...], e.g. m@http://127.0.0.1:8000/v1#timeout=5"


class ApiError(RuntimeError):
    """The API refused a request for a reason that retrying cannot fix (4xx)."""


class ApiUnavailable(ApiError):
    """The circuit breaker opened: ``max_failures`` calls in a row failed (``on_failure=stop``)."""


class NotACompletion(Exception):
    """A reply with status 200 that is not a chat completion (a transient failure of the call)."""


class ApiConfig(BaseModel):
    """How to reach an OpenAI-compatible API and how hard to try. Unknown keys and NaN or
    infinite numbers are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: str = Field(min_length=1, description="Model name sent in each request.")
    base_url: str = Field(DEFAULT_BASE_URL, description="API root (http or https), ending in /v1.")
    key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the key.")
    concurrency: int = Field(
        8, ge=1, description="HTTP calls in flight at once (over every call of the policy)."
    )
    timeout: float = Field(60.0, gt=0, description="Seconds per HTTP call.")
    max_tries: int = Field(6, ge=1, description="HTTP calls per completion (transient errors).")
    max_seconds: float = Field(
        300.0, gt=0, description="Bound on one decision: all its calls, backoffs and re-asks."
    )
    backoff: float = Field(1.0, gt=0, description="First backoff delay; doubles on each retry.")
    max_backoff: float = Field(30.0, gt=0, description="Cap on one backoff delay.")
    format_retries: int = Field(2, ge=0, description="Re-asks after a reply of the wrong format.")
    temperature: float | None = Field(1.0, ge=0, description="Sampling temperature (None: API's).")
    max_tokens: int | None = Field(None, ge=1, description="Reply token cap (None: not sent).")
    send_seed: bool = Field(True, description="Send the request's sampling seed.")
    send_events: bool | None = Field(
        None, description="Send the `detente` events extension (None: only to loopback URLs)."
    )
    max_failures: int = Field(
        20,
        ge=1,
        description="Failed calls in a row (any decisions; a completion resets the count) after "
        "which the endpoint counts as down: see on_failure.",
    )
    on_failure: Literal["stop", "continue"] = Field(
        "stop",
        description="When the endpoint is down: stop (raise ApiUnavailable, the run stops) or "
        "continue (one call per completion, no retries, until one succeeds; decisions without "
        "a reply play the default move and are counted as given up).",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        """An http(s) URL with a host (and a valid port), the scheme in lower case."""
        parts = urlsplit(url.strip())
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError:
            raise ValueError("the URL's port is not a number in 0..65535") from None
        if parts.scheme not in ("http", "https"):
            raise ValueError("the URL must start with http:// or https://")
        if not parts.hostname:
            raise ValueError("the URL has no host")
        if parts.fragment:
            raise ValueError("the URL must not have a #fragment")
        return parts.geturl()


def parse_api_spec(argument: str) -> ApiConfig:
    """``MODEL[@BASE_URL][#key=value&...]`` → config, e.g.
    ``bot:tit-for-tat@http://127.0.0.1:8000/v1#timeout=5&key_env=MY_KEY``.

    The URL starts at the first ``@`` followed by ``SCHEME://`` (so a model name may hold ``@``
    when a URL follows); an ``@`` without such a URL is an error. Errors name the problem and
    the option keys, never their values (a URL may hold a password)."""
    head, _, options = argument.partition("#")
    model, url = head, None
    if "@" in head:
        found = URL_AFTER_AT.search(head)
        if found is None:
            raise ValueError(
                "bad api spec: the part after '@' must be a URL with its scheme, http:// or "
                f"https:// (the default endpoint is used only without '@'); expected {SPEC_FORM}"
            )
        model, url = head[: found.start()], head[found.end() :]
    fields: dict[str, Any] = dict(parse_qsl(options, keep_blank_values=True))
    fields["model"] = model
    if url is not None:
        fields["base_url"] = url
    try:
        return ApiConfig(**fields)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in error.errors()
        )
        raise ValueError(f"bad api spec ({problems}); expected {SPEC_FORM}") from None


def public_url(url: str) -> str:
    """``url`` without what may be a secret: its user and password and its query string."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username is not None or parts.password is not None:
        netloc = "***@" + netloc
    return parts._replace(netloc=netloc, query="***" if parts.query else "").geturl()


def completion_text(response: Any) -> str:
    """The reply text of a chat completion; ``NotACompletion`` for anything else (an HTML page,
    ``{}``, no choices, a message that is not one)."""
    if not isinstance(response, ChatCompletion):
        raise NotACompletion(f"the reply is not a completion ({type(response).__name__})")
    choices = response.choices
    if not isinstance(choices, list) or not choices:
        raise NotACompletion("the reply has no choices")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None) if message is not None else None
    if message is None or not (content is None or isinstance(content, str)):
        raise NotACompletion("the reply's first choice holds no message text")
    return content or ""


def _token_count(usage: Any, key: str) -> int:
    value = getattr(usage, key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback interface."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def format_correction(problem: str, instruction: str) -> str:
    """The user message that follows a reply of the wrong format."""
    return (
        f"Your reply was not in the required format ({problem}). {instruction} "
        "Reply with exactly that format and nothing else."
    )


class ApiPolicy(Policy):
    """Replies from an OpenAI-compatible chat-completions API."""

    overlapping = True  # many calls in flight: the rollout sends each decision on its own

    def __init__(self, config: ApiConfig, name: str | None = None) -> None:
        self.config = config
        self.name = name or f"api:{config.model}@{public_url(config.base_url)}"
        self.send_events = (
            is_loopback(urlsplit(config.base_url).hostname or "")
            if config.send_events is None
            else config.send_events
        )
        self._start_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopper: weakref.finalize | None = None
        self._client: AsyncOpenAI | None = None  # created on, and used only by, self._loop
        self._semaphore: asyncio.Semaphore | None = None
        self.failures = 0  # failed calls in a row (the circuit breaker's count)
        self._last_failure = ""

    @classmethod
    def from_spec(cls, argument: str) -> ApiPolicy:
        """The policy of agent spec ``api:ARGUMENT``, named by the spec without its options
        (and without the URL's credentials and query)."""
        config = parse_api_spec(argument)
        head = argument.partition("#")[0]
        found = URL_AFTER_AT.search(head)
        name = f"api:{config.model}@{public_url(config.base_url)}" if found else f"api:{head}"
        return cls(config, name)

    def __reduce__(self) -> tuple[type[ApiPolicy], tuple[ApiConfig, str]]:
        """Pickle the configuration only (a copy starts its own loop and client)."""
        return type(self), (self.config, self.name)

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        return self.submit(requests).result()

    def submit(self, requests: Sequence[Request]) -> concurrent.futures.Future[list[Reply]]:
        """Starts the requests on the client's loop and returns at once: calls overlap (all of
        them share the ``concurrency`` bound on HTTP calls in flight); cancelling the future
        stops its requests."""
        return asyncio.run_coroutine_threadsafe(self._act_all(requests), self._client_loop())

    def close(self) -> None:
        """Close the client's connections and stop its event loop and thread (a later ``act``
        starts them again)."""
        with self._start_lock:
            loop, thread, stopper, client = self._loop, self._thread, self._stopper, self._client
            self._loop = self._thread = self._stopper = self._client = self._semaphore = None
        if loop is None or thread is None or stopper is None:
            return
        if client is not None:
            asyncio.run_coroutine_threadsafe(client.close(), loop).result(timeout=10)
        stopper()

    def _client_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name=f"{self.name} client", daemon=True
                )
                self._thread.start()
                # Stops the loop if the policy is dropped without close() (the loop and thread
                # do not refer back to the policy, so it can be collected).
                self._stopper = weakref.finalize(self, _stop_loop, self._loop, self._thread)
            return self._loop

    async def _act_all(self, requests: Sequence[Request]) -> list[Reply]:
        if self._client is None or self._semaphore is None:
            key_env = self.config.key_env

            async def api_key() -> str:  # read before each call; refers to nothing but the name
                return os.environ.get(key_env) or "none"

            self._client = AsyncOpenAI(
                api_key=api_key,
                base_url=self.config.base_url,
                timeout=self.config.timeout,
                max_retries=0,  # retries are ours: bounded, seeded, counted
            )
            self._semaphore = asyncio.Semaphore(self.config.concurrency)
        client, semaphore = self._client, self._semaphore
        tasks = [asyncio.ensure_future(self._decide(client, semaphore, r)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:  # e.g. ApiError: stop the other requests of the batch too
            for task in tasks:
                task.cancel()
            raise

    async def _decide(
        self, client: AsyncOpenAI, semaphore: asyncio.Semaphore, request: Request
    ) -> Reply:
        """One decision: transport retries inside, format retries around them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.max_seconds
        rng = random.Random(request.seed)
        messages = [dict(m) for m in request.messages]
        usage: Counter[str] = Counter(
            prompt_tokens=0, completion_tokens=0, format_retries=0, transport_retries=0, gave_up=0
        )
        options = self._options(request)
        text, correction = "", ""
        for attempt in range(1 + self.config.format_retries):
            if attempt:
                usage["format_retries"] += 1
                messages += [
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": correction},
                ]
            if self.config.send_seed:
                options["seed"] = (request.seed + attempt) % 2**63
            answer = await self._complete(
                client, semaphore, messages, options, rng, deadline, usage
            )
            if answer is None:
                usage["gave_up"] = 1
                break
            text = answer
            try:
                request.protocol.parse(request.kind, text)
                break
            except InvalidReply as error:
                correction = format_correction(
                    str(error), request.protocol.instruction(request.kind)
                )
        return Reply(text, usage=dict(usage))

    def _options(self, request: Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.config.temperature is not None:
            options["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            options["max_tokens"] = self.config.max_tokens
        if self.send_events:
            extension = {
                "game": request.game,
                "player": request.player,
                "kind": request.kind.value,
                "events": encode_events(request.events),
            }
            options["extra_body"] = {EXTENSION: extension}
        return options

    async def _complete(
        self,
        client: AsyncOpenAI,
        semaphore: asyncio.Semaphore,
        messages: list[dict[str, str]],
        options: dict[str, Any],
        rng: random.Random,
        deadline: float,
        usage: Counter[str],
    ) -> str | None:
        """The reply text of one completion, retrying transient failures; None if none came.

        With the circuit open (``max_failures`` failed calls in a row) this raises
        ``ApiUnavailable`` (``on_failure=stop``) or makes a single call (``continue``)."""
        loop = asyncio.get_running_loop()
        config = self.config
        failure, calls = "out of time", 0
        for tries in range(1, config.max_tries + 1):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            retry_after, calls = None, tries
            try:
                async with semaphore:
                    if self._circuit_open() and config.on_failure == "stop":
                        raise ApiUnavailable(self._unavailable())
                    response = await client.chat.completions.create(
                        model=config.model,
                        messages=messages,  # type: ignore[arg-type]
                        timeout=min(config.timeout, remaining),
                        **options,
                    )
                text = completion_text(response)
            except APIStatusError as error:
                if error.status_code < 500 and error.status_code not in TRANSIENT_STATUS:
                    raise ApiError(self._describe(error)) from None
                failure = f"HTTP {error.status_code}"
                retry_after = _retry_after(error.response.headers.get("retry-after"))
            except APIConnectionError as error:  # includes timeouts
                failure = type(error).__name__
            except (APIError, NotACompletion, ValueError) as error:  # e.g. broken JSON
                failure = f"not a completion: {error}"[:200]
            else:
                self.failures = 0
                if response.usage is not None:
                    usage["prompt_tokens"] += _token_count(response.usage, "prompt_tokens")
                    usage["completion_tokens"] += _token_count(
                        response.usage, "completion_tokens"
                    )
                return text
            self.failures += 1
            self._last_failure = failure
            if self._circuit_open():
                if config.on_failure == "stop":
                    raise ApiUnavailable(self._unavailable())
                break  # continue: one call per completion while the endpoint is down
            delay = backoff_delay(config, tries, rng, retry_after)
            if tries == config.max_tries or loop.time() + delay >= deadline:
                break
            usage["transport_retries"] += 1
            await asyncio.sleep(delay)
        logger.warning(
            "%s: no reply after %d calls (last failure: %s); it will be flagged invalid",
            self.name,
            calls,
            failure,
        )
        return None

    def _circuit_open(self) -> bool:
        return self.failures >= self.config.max_failures

    def _unavailable(self) -> str:
        return (
            f"{self.name}: {self.config.max_failures} calls in a row failed "
            f"(last: {self._last_failure}); "
            "stopping. Check the server, or raise #max_failures=N, or pass "
            "#on_failure=continue to play on with default moves where no reply comes"
        )

    def _describe(self, error: APIStatusError) -> str:
        hint = ""
        if error.status_code in (401, 403):
            hint = f" (is ${self.config.key_env} set to a valid key?)"
        return f"{self.name}: HTTP {error.status_code}: {error.message}{hint}"


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Stop ``loop`` (running in ``thread``), wait for the thread, release the loop's files."""
    if loop.is_closed():
        return
    if thread.is_alive():
        with contextlib.suppress(RuntimeError, TimeoutError):
            asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
    if not thread.is_alive():
        loop.close()


def backoff_delay(
    config: ApiConfig, tries: int, rng: random.Random, retry_after: float | None = None
) -> float:
    """Seconds to wait after the ``tries``-th failed call: the server's ``Retry-After`` if given,
    else ``d·(1 + u)/2`` with ``d = backoff·2^(tries−1)``, ``u ~ U[0, 1)`` (equal jitter); at
    most ``max_backoff``."""
    if retry_after is None:
        retry_after = config.backoff * 2 ** (tries - 1) * (0.5 + 0.5 * rng.random())
    return min(config.max_backoff, retry_after)


def _retry_after(header: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (the delta-seconds form only)."""
    try:
        return max(0.0, float(header)) if header is not None else None
    except ValueError:
        return None
