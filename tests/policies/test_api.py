"""The API policy against a real detente server on loopback, through the official client.

Faults are injected by an ASGI middleware in front of the server (no mock of the HTTP layer):
HTTP errors, slow replies, replies of the wrong format.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import pickle
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

from detente.agents import make_agent
from detente.games import Kind, make_config, make_game
from detente.policies.api import (
    ApiConfig,
    ApiError,
    ApiPolicy,
    ApiUnavailable,
    backoff_delay,
    parse_api_spec,
    public_url,
)
from detente.policies.base import Policy, Reply, Request
from detente.policies.bots import make_bot
from detente.protocol import make_protocol
from detente.rollout.records import GameRecord
from detente.rollout.runner import InvalidReplyConfig, Match, play
from detente.serve import create_app, serve_in_thread


@dataclass
class Fault:
    """What the middleware does to one chat request: wait ``delay``, then answer ``status`` (an
    error), or ``text`` (a completion the server never made), or pass it on to the server."""

    delay: float = 0.0
    status: int | None = None
    retry_after: str | None = None
    text: str | None = None
    raw: tuple[str, bytes] | None = None  # (content type, body) answered with status 200


@dataclass
class Seen:
    at: float
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Faults:
    """ASGI middleware: records every chat request, applies ``plan`` (one fault per request, in
    order), then ``always`` (None: pass through). Counts requests in flight."""

    app: Any
    plan: list[Fault] = field(default_factory=list)
    always: Fault | None = None
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/chat/completions":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen.append(Seen(time.monotonic(), headers, json.loads(body)))
        fault = self.plan.pop(0) if self.plan else self.always
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self._handle(fault, body, scope, send)
        finally:
            self.in_flight -= 1

    async def _handle(self, fault: Fault | None, body: bytes, scope: dict, send: Callable) -> None:
        if fault is not None:
            await asyncio.sleep(fault.delay)
            if fault.status is not None:
                error = {"error": {"message": "injected", "type": "server_error"}}
                extra = [(b"retry-after", fault.retry_after.encode())] if fault.retry_after else []
                await _respond(send, fault.status, error, extra)
                return
            if fault.text is not None:
                await _respond(send, 200, _completion(fault.text))
                return
            if fault.raw is not None:
                content_type, data = fault.raw
                headers = [(b"content-type", content_type.encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": data})
                return

        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _respond(send: Callable, status: int, payload: dict, extra: list | None = None) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def _completion(text: str) -> dict:
    return {
        "id": "chatcmpl-injected",
        "object": "chat.completion",
        "created": 0,
        "model": "injected",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


Server = tuple[str, Faults]


@pytest.fixture
def serve_bot() -> Iterator[Callable[..., Server]]:
    """``serve_bot(game, bot, api_key=None)`` → (base URL, fault middleware); stopped after."""
    stack: list[Any] = []

    def start(game: str, bot: str, api_key: str | None = None) -> Server:
        faults = Faults(create_app(make_bot(game, bot), game, make_protocol(game), api_key))
        context = serve_in_thread(faults)
        stack.append(context)
        return context.__enter__(), faults

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def fast(url: str, model: str = "bot:tit-for-tat", **options: Any) -> ApiPolicy:
    """An API policy with tiny timeouts and backoffs (seconds), to keep the tests short."""
    settings = {"timeout": 2.0, "backoff": 0.01, "max_backoff": 0.05, "max_tries": 4, **options}
    return ApiPolicy(ApiConfig(model=model, base_url=url, **settings))


def ipd_request(seed: int = 0) -> Request:
    """Alice's first IPD decision."""
    game, protocol = make_game("ipd", None, 0), make_protocol("ipd")
    events = game.events(0)
    messages = (
        {"role": "system", "content": protocol.rules(game, 0)},
        {"role": "user", "content": protocol.observation(events, Kind.MOVE, 0)},
    )
    return Request("g/0", "ipd", 0, 0, Kind.MOVE, messages, tuple(events), protocol, seed)


def play_pair(
    game_name: str, policies: tuple[Policy, Policy], seeds: range, rounds: int = 10, **invalid: Any
) -> list[GameRecord]:
    config = make_config(game_name, {"rounds": rounds})
    matches = [Match(make_game(game_name, config, seed), policies, f"g{seed}") for seed in seeds]
    return play(matches, make_protocol(game_name), InvalidReplyConfig(**invalid), seed=7)


def same_play(served: list[GameRecord], direct: list[GameRecord]) -> None:
    for a, b in zip(served, direct, strict=True):
        assert a.rewards == b.rewards
        for seat_a, seat_b in zip(a.seats, b.seats, strict=True):
            assert [t.reply for t in seat_a.turns] == [t.reply for t in seat_b.turns]
            assert not any(t.invalid for t in seat_a.turns)


# ---- full games through the server ------------------------------------------------------------


@pytest.mark.parametrize(
    ("served", "other"),
    [("tit-for-tat", "always-defect"), ("tit-for-tat", "alternator"), ("random", "wsls")],
)
def test_ipd_through_the_server_plays_like_the_bot_itself(serve_bot, served, other):
    url, _ = serve_bot("ipd", served)
    api = fast(url, f"bot:{served}")
    opponent = make_bot("ipd", other)
    for seats, direct in [
        ((api, opponent), (make_bot("ipd", served), opponent)),
        ((opponent, api), (opponent, make_bot("ipd", served))),
    ]:
        same_play(play_pair("ipd", seats, range(3)), play_pair("ipd", direct, range(3)))


def test_tit_for_tat_against_always_defect_gets_the_textbook_payoffs(serve_bot):
    url, _ = serve_bot("ipd", "tit-for-tat")
    (record,) = play_pair("ipd", (fast(url), make_bot("ipd", "always-defect")), range(1))
    per_round = [sum(r[p] for r in record.rewards) / len(record.rewards) for p in (0, 1)]
    assert per_round == pytest.approx([0.9, 1.4])


@pytest.mark.parametrize("other", ["honest", "greedy", "liar"])
def test_trust_split_through_the_server_plays_like_the_bot_itself(serve_bot, other):
    url, faults = serve_bot("trust-split", "honest")
    api = fast(url, "bot:honest")
    served = play_pair("trust-split", (api, make_bot("trust-split", other)), range(4))
    bots = (make_bot("trust-split", "honest"), make_bot("trust-split", other))
    direct = play_pair("trust-split", bots, range(4))
    same_play(served, direct)
    kinds = {s.body["detente"]["kind"] for s in faults.seen}
    assert kinds == {"message", "move"}  # both decisions went through the server


def test_a_batch_is_sent_concurrently_within_the_limit(serve_bot):
    url, faults = serve_bot("ipd", "tit-for-tat")
    faults.always = Fault(delay=0.05)
    records = play_pair(
        "ipd", (fast(url, concurrency=4), make_bot("ipd", "always-cooperate")), range(16), 1
    )
    assert faults.max_in_flight == 4 and len(faults.seen) == 16
    assert all(r.rewards == [(3.0, 3.0)] for r in records)


# ---- transport faults --------------------------------------------------------------------------


def test_server_errors_then_success_are_retried_and_counted(serve_bot):
    url, faults = serve_bot("ipd", "tit-for-tat")
    faults.plan = [Fault(status=500), Fault(status=503)]
    (reply,) = fast(url).act([ipd_request()])
    assert reply.text == "<A>" and len(faults.seen) == 3
    assert reply.usage["transport_retries"] == 2 and reply.usage["gave_up"] == 0


def test_rate_limits_back_off_exponentially_or_as_told(serve_bot):
    url, faults = serve_bot("ipd", "tit-for-tat")
    faults.plan = [Fault(status=429)] * 3 + [Fault(status=429, retry_after="0.2")]
    policy = fast(url, backoff=0.04, max_backoff=0.3, max_tries=5)
    (reply,) = policy.act([ipd_request()])
    assert reply.text == "<A>" and reply.usage["transport_retries"] == 4
    gaps = [b.at - a.at for a, b in zip(faults.seen, faults.seen[1:], strict=False)]
    for k, gap in enumerate(gaps[:3]):  # equal jitter: delay in [d/2, d] with d = 0.04 * 2^k
        assert gap >= 0.5 * 0.04 * 2**k
    assert gaps[3] >= 0.2  # Retry-After wins


def test_backoff_is_exponential_with_seeded_jitter_and_capped():
    config = ApiConfig(model="m", backoff=1.0, max_backoff=10.0)

    def delays(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [backoff_delay(config, tries, rng) for tries in range(1, 6)]

    assert delays(1) == delays(1) and delays(1) != delays(2)
    for tries, delay in enumerate(delays(3), start=1):
        assert 2 ** (tries - 1) / 2 <= delay <= 2 ** (tries - 1)
    assert backoff_delay(config, 6, random.Random(3)) == 10.0  # 32·(1 + u)/2 ≥ 16: capped
    assert backoff_delay(config, 1, random.Random(0), retry_after=4.0) == 4.0
    assert backoff_delay(config, 1, random.Random(0), retry_after=60.0) == 10.0


def test_slow_reply_times_out_and_is_retried(serve_bot):
    url, faults = serve_bot("ipd", "tit-for-tat")
    faults.plan = [Fault(delay=0.5)]
    (reply,) = fast(url, timeout=0.1).act([ipd_request()])
    assert reply.text == "<A>" and reply.usage["transport_retries"] == 1


def test_a_server_that_never_answers_in_time_gives_a_flagged_invalid_reply(serve_bot):
    url, faults = serve_bot("ipd", "tit-for-tat")
    faults.always = Fault(delay=0.5)
    policy = fast(url, timeout=0.1, max_tries=3)
    (record,) = play_pair(
        "ipd", (policy, make_bot("ipd", "always-cooperate")), range(1), 1, free_retries=0
    )
    (turn,) = record.seats[0].turns
    assert turn.invalid and turn.reply == "" and turn.action == "D"  # the declared default
    assert len(faults.seen) == 3  # max_tries calls, then the run went on


def test_the_total_time_of_a_decision_is_bounded(serve_bot):
    url, faults = serve_bot("ipd", "tit-for-tat")
    faults.always = Fault(delay=0.5)
    policy = fast(url, timeout=0.1, max_tries=100, max_seconds=0.35)
    start = time.monotonic()
    (reply,) = policy.act([ipd_request()])
    assert time.monotonic() - start < 0.85  # vs 100 tries × 0.1 s unbounded
    assert reply.usage["gave_up"] == 1 and len(faults.seen) <= 4


def test_client_errors_are_configuration_errors_and_raise(serve_bot):
    url, _ = serve_bot("ipd", "tit-for-tat")
    with pytest.raises(ApiError, match="404.*not served here"):
        fast(url, "no-such-model").act([ipd_request()])
    # Without the events, the server reads the chat back; a chat it cannot read is a 400.
    (reply,) = fast(url, send_events=False).act([ipd_request()])
    assert reply.text == "<A>"  # tit-for-tat opens with cooperation
    unreadable = dataclasses.replace(
        ipd_request(), messages=(*ipd_request().messages[:-1], {"role": "user", "content": "hi"})
    )
    with pytest.raises(ApiError, match="400"):
        fast(url, send_events=False).act([unreadable])


# ---- format retries ---------------------------------------------------------------------------


def test_malformed_replies_are_re_asked_with_the_exact_format(serve_bot):
    url, faults = serve_bot("ipd", "tit-for-tat")
    faults.plan = [Fault(text="I choose A."), Fault(text="A")]
    (reply,) = fast(url, format_retries=2).act([ipd_request()])
    assert reply.text == "<A>"
    assert reply.usage["format_retries"] == 2 and reply.usage["transport_retries"] == 0
    assert reply.usage["prompt_tokens"] == 14 and reply.usage["completion_tokens"] == 6
    last = faults.seen[-1].body["messages"]
    assert [m["role"] for m in last[-4:]] == ["assistant", "user", "assistant", "user"]
    assert last[-2]["content"] == "A"
    correction = last[-1]["content"]
    assert correction.startswith("Your reply was not in the required format")
    assert make_protocol("ipd").instruction(Kind.MOVE) in correction


def test_replies_that_never_parse_are_flagged_invalid_by_the_runner(serve_bot):
    url, faults = serve_bot("ipd", "tit-for-tat")
    faults.always = Fault(text="maybe")
    policy = fast(url, format_retries=1)
    (record,) = play_pair(
        "ipd",
        (policy, make_bot("ipd", "always-cooperate")),
        range(1),
        1,
        free_retries=1,
        constrained_retry=False,
    )
    (turn,) = record.seats[0].turns
    assert turn.invalid and turn.reply == "maybe" and turn.attempts == 2
    assert len(faults.seen) == 4  # (1 + format_retries) calls per runner attempt


# ---- the key -----------------------------------------------------------------------------------


def test_the_key_comes_from_the_configured_variable_and_is_never_recorded(serve_bot, monkeypatch):
    secret = "sk-detente-test-7f3a9c"
    monkeypatch.setenv("DETENTE_TEST_KEY", secret)
    url, faults = serve_bot("ipd", "tit-for-tat", api_key=secret)
    policy = fast(url, key_env="DETENTE_TEST_KEY")
    records = play_pair("ipd", (policy, make_bot("ipd", "grim")), range(2))
    assert {s.headers["authorization"] for s in faults.seen} == {f"Bearer {secret}"}
    (reply,) = policy.act([ipd_request()])
    recorded = json.dumps([asdict(r) for r in records], default=str) + repr(reply) + repr(policy)
    assert secret not in recorded
    monkeypatch.delenv("DETENTE_TEST_KEY")
    with pytest.raises(ApiError, match=r"401.*\$DETENTE_TEST_KEY"):
        policy.act([ipd_request()])
    assert faults.seen[-1].headers["authorization"] == "Bearer none"  # the placeholder


# ---- configuration ---------------------------------------------------------------------------


def test_spec_parsing_and_the_agent_kind():
    config = parse_api_spec("bot:tit-for-tat@http://127.0.0.1:9/v1#timeout=5&key_env=K")
    assert (config.model, config.base_url, config.timeout, config.key_env) == (
        "bot:tit-for-tat",
        "http://127.0.0.1:9/v1",
        5.0,
        "K",
    )
    assert parse_api_spec("vertex@2024@https://x.example/v1").model == "vertex@2024"
    assert parse_api_spec("m@HTTP://127.0.0.1:8000/v1").base_url == "http://127.0.0.1:8000/v1"
    assert parse_api_spec("gpt-4o").base_url == "https://api.openai.com/v1"
    with pytest.raises(ValueError, match="colour"):
        parse_api_spec("m@http://localhost/v1#colour=red")
    policy = make_agent("api:m@http://localhost:1/v1#concurrency=2", "ipd")
    assert isinstance(policy, ApiPolicy) and policy.name == "api:m@http://localhost:1/v1"
    assert policy.config.concurrency == 2


@pytest.mark.parametrize(
    ("url", "sends"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://localhost:8000/v1", True),
        ("http://[::1]:8000/v1", True),
        ("https://api.openai.com/v1", False),
        ("http://10.0.0.2:8000/v1", False),
    ],
)
def test_events_are_sent_by_default_only_to_loopback(url, sends):
    assert ApiPolicy(ApiConfig(model="m", base_url=url)).send_events is sends
    forced = ApiPolicy(ApiConfig(model="m", base_url=url, send_events=not sends))
    assert forced.send_events is not sends


def test_act_works_inside_a_running_event_loop(serve_bot):
    url, _ = serve_bot("ipd", "tit-for-tat")

    async def inside() -> list[Reply]:
        return fast(url).act([ipd_request()])

    (reply,) = asyncio.run(inside())
    assert reply.text == "<A>"


def test_a_pickled_copy_works(serve_bot):
    url, _ = serve_bot("ipd", "tit-for-tat")
    policy = fast(url)
    policy.act([ipd_request()])  # the original has a loop and a client by now
    copy = pickle.loads(pickle.dumps(policy))
    assert copy.config == policy.config and copy.name == policy.name
    assert copy.act([ipd_request()])[0].text == "<A>"


# ---- hostile specs and a faulty world (issue 19) ------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "gpt-4o@localhost:8000/v1",  # no scheme: used to fall back to api.openai.com
        "gpt-4o@127.0.0.1:8000/v1",
        "gpt-4o@http//localhost:8000/v1",
        "gpt-4o@ftp://localhost/v1",
        "gpt-4o@https://",
        "gpt-4o@http://localhost:99999/v1",
        "vertex@2024",  # an '@' is always followed by a URL
        "@http://127.0.0.1:8000/v1",  # no model
    ],
)
def test_a_spec_with_an_at_is_that_url_or_an_error_never_the_default_endpoint(spec):
    with pytest.raises(ValueError, match="bad api spec"):
        parse_api_spec(spec)
    with pytest.raises(ValueError, match="bad api spec"):
        make_agent(f"api:{spec}", "ipd")


def test_errors_never_echo_option_values():
    for spec in ["m#timeout=s3cr3t", "m#colour=s3cr3t", "m@http://u:s3cr3t@h:x/v1"]:
        with pytest.raises(ValueError, match="bad api spec") as caught:
            parse_api_spec(spec)
        assert "s3cr3t" not in str(caught.value)
    with pytest.raises(ValueError, match="timeout"):
        parse_api_spec("m#timeout=s3cr3t")  # the key is named


def test_credentials_in_the_url_never_reach_names_tables_json_or_transcripts(serve_bot):
    url, faults = serve_bot("ipd", "tit-for-tat")
    secret_url = url.replace("http://", "http://alice:pw-s3cr3t@")
    policy = ApiPolicy.from_spec(f"bot:tit-for-tat@{secret_url}#timeout=2")
    assert policy.name == f"api:bot:tit-for-tat@{url.replace('http://', 'http://***@')}"
    assert public_url("https://h/v1?key=q-s3cr3t") == "https://h/v1?***"
    from detente.evaluate.faceoff import faceoff

    result, records = faceoff(
        "ipd", [policy, make_bot("ipd", "grim")], make_protocol("ipd"), 2
    )
    shown = (
        json.dumps(result.to_json())
        + result.table()
        + json.dumps([r.to_json() for r in records])
        + repr(policy)
    )
    assert "s3cr3t" not in shown and len(faults.seen) > 0
    with pytest.raises(ApiError) as caught:  # an error names the policy: without its secrets
        ApiPolicy.from_spec(f"nope@{secret_url}").act([ipd_request()])
    assert "s3cr3t" not in str(caught.value)


NOT_COMPLETIONS = [
    Fault(raw=("text/html", b"<html><body>502 Bad Gateway</body></html>")),
    Fault(raw=("application/json", b"{}")),
    Fault(raw=("application/json", b'{"choices": []}')),
    Fault(raw=("application/json", b'{"choices": [')),  # cut off
    Fault(raw=("application/json", b"[1, 2]")),
    Fault(raw=("application/json", b'{"choices": [{"index": 0, "message": {"content": 5}}]}')),
]


def test_a_reply_that_is_not_a_completion_is_a_transient_failure_of_that_call(serve_bot):
    url, faults = serve_bot("ipd", "tit-for-tat")
    faults.plan = list(NOT_COMPLETIONS)
    policy = fast(url, max_tries=len(NOT_COMPLETIONS) + 1)
    (reply,) = policy.act([ipd_request()])
    assert reply.text == "<A>" and reply.usage["transport_retries"] == len(NOT_COMPLETIONS)
    assert reply.usage["gave_up"] == 0 and policy.failures == 0  # the completion reset it


@pytest.mark.parametrize("fault", NOT_COMPLETIONS[:3], ids=["html", "empty", "no-choices"])
def test_a_faceoff_against_a_broken_api_goes_on_and_counts_per_agent(serve_bot, fault):
    from detente.evaluate.faceoff import faceoff

    url, faults = serve_bot("ipd", "tit-for-tat")
    faults.always = fault
    api = fast(url, max_failures=3, on_failure="continue")
    bots = [make_bot("ipd", "grim"), make_bot("ipd", "always-cooperate")]
    config = make_config("ipd", {"rounds": 10})
    start = time.monotonic()
    result, _ = faceoff("ipd", [api, *bots], make_protocol("ipd"), 2, config=config)
    assert time.monotonic() - start < 20
    # (two opponents x two seat orders + both seats of self-play) x two games x ten rounds
    decisions = (2 * 2 + 2) * 2 * 10
    assert result.decisions[api.name] == decisions and result.gave_up[api.name] == decisions
    assert result.invalid_rates[api.name] == 1.0  # not diluted by the bots' turns
    assert all(result.gave_up[b.name] == 0 and result.invalid_rates[b.name] == 0 for b in bots)
    # Once open, one call per completion: the runner's 3 attempts per decision, no backoffs.
    assert len(faults.seen) <= 3 * decisions + 3
    (line,) = result.reply_problems()
    assert f"{decisions} got no reply from the API" in line
    assert result.to_json()["gave_up"][api.name] == decisions


def test_a_population_table_shows_an_api_agents_usage(serve_bot):
    from detente.evaluate.faceoff import population_faceoff

    url, _ = serve_bot("ipd", "tit-for-tat")
    api = fast(url)
    config = make_config("ipd", {"rounds": 3})
    lineup = [api, make_bot("ipd", "grim")]
    result, _ = population_faceoff("ipd", lineup, make_protocol("ipd"), 2, config=config)
    usage = result.usage[api.name]
    assert usage["transport_retries"] == 0 and usage["gave_up"] == 0
    lines = result.table().splitlines()
    assert lines[-1] == (
        f"{api.name}: API usage: {usage['prompt_tokens']} prompt + "
        f"{usage['completion_tokens']} completion tokens, 0 transport retries, "
        "0 format retries, 0 given up"
    )
    assert not any(line.startswith("bot:grim:") for line in lines)  # a bot uses no API


@pytest.mark.parametrize(
    "fault", [Fault(status=500), Fault(status=429, retry_after="0.01")], ids=["500", "429"]
)
def test_an_api_that_always_fails_stops_the_faceoff_in_seconds(serve_bot, fault):
    from detente.evaluate.faceoff import faceoff

    url, faults = serve_bot("ipd", "tit-for-tat")
    faults.always = fault
    api = fast(url, concurrency=4)  # default max_failures=20, on_failure=stop
    config = make_config("ipd", {"rounds": 10})
    start = time.monotonic()
    with pytest.raises(ApiUnavailable, match=rf"20 calls in a row failed \(last: HTTP {fault.status}"):
        faceoff("ipd", [api, make_bot("ipd", "grim")], make_protocol("ipd"), 4, config=config)
    assert time.monotonic() - start < 10
    assert 20 <= len(faults.seen) < 20 + 4  # calls already in flight may still fail


def test_the_circuit_closes_again_when_a_call_succeeds(serve_bot):
    url, faults = serve_bot("ipd", "tit-for-tat")
    faults.plan = [Fault(status=503)] * 2
    policy = fast(url, max_failures=2, on_failure="continue")
    (first,) = policy.act([ipd_request()])
    assert first.usage["gave_up"] == 1 and policy.failures == 2 and len(faults.seen) == 2
    (second,) = policy.act([ipd_request()])  # one call while open: the server is back
    assert second.text == "<A>" and policy.failures == 0 and len(faults.seen) == 3


def _threads_and_files() -> tuple[int, int]:
    return threading.active_count(), len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_close_releases_the_threads_and_descriptors_of_a_policy(serve_bot):
    url, _ = serve_bot("ipd", "tit-for-tat")
    fast(url).act([ipd_request()])  # warm up what is shared (imports, the server's side)
    gc.collect()
    before = _threads_and_files()
    for _ in range(5):
        policy = fast(url)
        policy.act([ipd_request()])
        policy.close()
    for _ in range(3):
        with fast(url) as policy:
            policy.act([ipd_request()])
    assert _threads_and_files() == before
    policy.close()  # twice is harmless
    assert policy.act([ipd_request()])[0].text == "<A>"  # and a closed policy starts again
    policy.close()
