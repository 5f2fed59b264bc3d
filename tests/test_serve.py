"""``detente serve``: the OpenAI-compatible endpoint as the official ``openai`` client sees it."""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest

from detente.agents import as_trained, make_agent
from detente.games import Kind, make_config, make_game
from detente.games.codec import encode_events
from detente.games.ipd import Move
from detente.policies.base import Policy, Reply, Request
from detente.policies.bots import make_bot
from detente.protocol import make_protocol
from detente.rollout.runner import Match, play
from detente.serve import ServeLimits, agent_app, create_app, model_names, serve_in_thread


def client(url: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=10)


def ipd_extension(other_moves: Sequence[Move], player: int = 0) -> dict:
    """The ``detente`` extension of a seat whose opponent played ``other_moves``."""
    game = make_game("ipd", None, 0)
    for move in other_moves:
        moves = {player: Move.COOPERATE, 1 - player: move}
        game.act(moves)
    events = encode_events(game.events(player))
    return {"game": "ipd", "player": player, "kind": "move", "events": events}


USER = [{"role": "user", "content": "Your choice (<A> or <B>):"}]


@pytest.fixture
def tit_for_tat() -> Iterator[str]:
    app = create_app(make_bot("ipd", "tit-for-tat"), "ipd", make_protocol("ipd"))
    with serve_in_thread(app) as url:
        yield url


def test_models_lists_the_agent(tit_for_tat):
    assert [m.id for m in client(tit_for_tat).models.list()] == ["bot:tit-for-tat"]


def test_a_bot_answers_with_its_canonical_reply(tit_for_tat):
    api = client(tit_for_tat)
    for history, expected in [
        ([], "<A>"),
        ([Move.DEFECT], "<B>"),
        ([Move.DEFECT, Move.COOPERATE], "<A>"),
    ]:
        completion = api.chat.completions.create(
            model="bot:tit-for-tat",
            messages=USER,
            extra_body={"detente": ipd_extension(history, player=1)},
        )
        assert completion.object == "chat.completion" and completion.model == "bot:tit-for-tat"
        (choice,) = completion.choices
        assert choice.index == 0 and choice.finish_reason == "stop"
        assert choice.message.role == "assistant" and choice.message.content == expected
        assert completion.usage is not None and completion.usage.total_tokens == 0


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"extra_body": None}, 400, "scripted bot.*`detente` extension"),
        ({"model": "gpt-4o"}, 404, "not served here"),
        ({"extra_body": {"detente": {**ipd_extension([]), "game": "split"}}}, 400, "plays 'ipd'"),
        (
            {"extra_body": {"detente": {**ipd_extension([]), "events": [{"type": "x"}]}}},
            400,
            "bad detente events.*not a known event type",
        ),
        ({"extra_body": {"detente": {**ipd_extension([]), "player": 2}}}, 400, "player"),
        ({"messages": []}, 400, "messages"),
    ],
)
def test_bad_requests_get_clear_errors(tit_for_tat, change, status, message):
    arguments = {
        "model": "bot:tit-for-tat",
        "messages": USER,
        "extra_body": {"detente": ipd_extension([])},
        **change,
    }
    with pytest.raises(openai.APIStatusError, match=message) as caught:
        client(tit_for_tat).chat.completions.create(**arguments)
    assert caught.value.status_code == status


class Echo(Policy):
    """A stand-in for a language model: needs only the messages; slow enough to overlap."""

    name = "lm:echo"

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        time.sleep(0.01)
        return [
            Reply(
                f"{r.kind.value}:{r.messages[-1]['content'][::-1]}",
                usage={"prompt_tokens": len(r.messages), "completion_tokens": 1},
            )
            for r in requests
        ]


def test_a_language_model_needs_only_messages_and_concurrent_requests_stay_apart():
    app = create_app(Echo(), "trust-split", make_protocol("trust-split"))
    with serve_in_thread(app) as url:
        api = client(url)

        def ask(i: int) -> openai.types.chat.ChatCompletion:
            messages = [
                {"role": "system", "content": "rules"},
                {"role": "user", "content": f"q{i}"},
            ]
            return api.chat.completions.create(model="lm:echo", messages=messages)

        with ThreadPoolExecutor(8) as pool:
            completions = list(pool.map(ask, range(24)))
    for i, completion in enumerate(completions):
        assert completion.choices[0].message.content == f"{Kind.MESSAGE.value}:{f'q{i}'[::-1]}"
        assert completion.usage is not None
        assert (completion.usage.prompt_tokens, completion.usage.total_tokens) == (2, 3)


def test_an_api_key_is_required_when_configured():
    app = create_app(make_bot("ipd", "grim"), "ipd", make_protocol("ipd"), api_key="sk-server")
    with serve_in_thread(app) as url:
        with pytest.raises(openai.AuthenticationError):
            client(url, "sk-wrong").models.list()
        assert [m.id for m in client(url, "sk-server").models.list()] == ["bot:grim"]


# ---- the command line ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, port_hex = local.partition(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


def test_the_serve_command_binds_loopback_by_default():
    port = free_port()
    command = [sys.executable, "-m", "detente.cli", "serve", "bot:tit-for-tat", "--game", "ipd"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--alias", "tft"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        api, deadline = client(f"http://127.0.0.1:{port}/v1"), time.monotonic() + 30
        while True:
            try:
                models = api.models.list()
                break
            except openai.APIConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.1)
        assert [m.id for m in models] == ["bot:tit-for-tat"]
        completion = api.chat.completions.create(
            model="bot:tit-for-tat",
            messages=USER,
            extra_body={"detente": ipd_extension([Move.DEFECT])},
        )
        assert completion.choices[0].message.content == "<B>"
        (messages, _), *_ = played_chats("ipd", ["tit-for-tat", "grim"], "full")[0]
        plain = api.chat.completions.create(model="tft", messages=messages)  # the chat alone
        assert plain.choices[0].message.content == "<A>"
        if Path("/proc/net/tcp").exists():
            assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert (
        f"bot:tit-for-tat (also as tit-for-tat, tft) (ipd) at http://127.0.0.1:{port}/v1" in output
    )


# ---- hostile requests (issue 19): limits, 4xx in the OpenAI format, a mixed load ---------------


class Counting(Policy):
    """Echoes the last message after ``delay`` seconds; counts the requests that reached it."""

    name = "lm:counting"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.calls = delay, 0

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        self.calls += len(requests)
        time.sleep(self.delay)
        return [Reply(r.messages[-1]["content"][:20]) for r in requests]


def raw_post(url: str, body: bytes | Iterator[bytes], timeout: float = 10) -> tuple[int, dict]:
    """POST ``body`` to the chat endpoint with the standard library (no client-side checks);
    returns (status, JSON body)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(
            "POST",
            f"{parts.path}/chat/completions",
            body=body,
            headers={"content-type": "application/json"},
            encode_chunked=not isinstance(body, bytes),
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def chat_body(messages: list[dict], model: str = "lm:counting", **extra: Any) -> bytes:
    return json.dumps({"model": model, "messages": messages, **extra}).encode()


def assert_openai_error(payload: dict) -> str:
    error = payload["error"]
    assert set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str)
    return error["message"]


@pytest.fixture
def counting() -> Iterator[tuple[str, Counting]]:
    policy = Counting()
    limits = ServeLimits(max_prompt_chars=10_000)
    with serve_in_thread(create_app(policy, "ipd", make_protocol("ipd"), limits=limits)) as url:
        yield url, policy


def test_a_body_over_the_limit_gets_413_before_it_is_read(counting):
    url, policy = counting
    huge = chat_body([{"role": "user", "content": "a" * (50 << 20)}])  # 50 MB, declared
    start = time.monotonic()
    status, payload = raw_post(url, huge)
    assert status == 413 and "at most 1048576 bytes" in assert_openai_error(payload)
    streamed = (b"a" * (1 << 20) for _ in range(50))  # 50 MB, chunked: no length declared
    status, payload = raw_post(url, streamed)
    assert status == 413 and payload["error"]["code"] == "request_too_large"
    assert time.monotonic() - start < 10 and policy.calls == 0


def test_too_many_messages_or_too_long_a_prompt_get_400(counting):
    url, policy = counting
    many = [{"role": "user", "content": "x"}] * 20_001  # within the body limit
    status, payload = raw_post(url, chat_body(many))
    assert status == 400 and payload["error"]["code"] == "too_many_messages"
    assert "at most 512" in payload["error"]["message"]
    long = [{"role": "user", "content": "y" * 10_001}]
    status, payload = raw_post(url, chat_body(long))
    assert status == 400 and payload["error"]["code"] == "context_length_exceeded"
    assert policy.calls == 0
    status, _ = raw_post(url, chat_body([{"role": "user", "content": "y" * 10_000}]))
    assert status == 200 and policy.calls == 1  # at the limit is fine


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (chat_body([*USER, {"role": "assistant", "content": "<A>"}]), "last message must be"),
        (chat_body([{"role": "system", "content": "rules"}]), "last message must be"),
        (
            b'{"model": "lm:counting", "messages": [{"role": "user", "content": "\\ud800"}]}',
            "messages.0.content: not valid Unicode",
        ),
        (b'{"model": "\\udfff", "messages": []}', "model: not valid Unicode"),
        (chat_body([{"role": "tool", "content": "x"}]), "role"),
        (chat_body([{"role": "user", "content": ["part"]}]), "content"),
        (b"<html>not json</html>", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),  # nested past the parser's depth
        (chat_body(USER, model="gpt-4o"), "not served here"),
        (chat_body(USER, n=2), "only n=1"),
    ],
)
def test_every_bad_request_gets_a_4xx_in_the_openai_format(counting, body, message):
    url, policy = counting
    status, payload = raw_post(url, body)
    assert 400 <= status < 500 and message in assert_openai_error(payload)
    assert policy.calls == 0


@pytest.mark.parametrize(
    ("game", "bot", "extension", "message"),
    [
        ("ipd", "tit-for-tat", {"events": []}, "at least the start of the game"),
        ("trust-split", "honest", {"events": []}, "at least the start of the game"),
        ("ipd", "tit-for-tat", {"kind": "message"}, "ipd has no messages"),
        ("trust-split", "honest", {"events": [{"type": "round_end", "round": 0}]}, "events"),
    ],
)
def test_a_bot_request_it_cannot_decide_from_gets_400(game, bot, extension, message):
    app = create_app(make_bot(game, bot), game, make_protocol(game))
    base = {"game": game, "player": 0, "kind": "move", "events": []}
    with serve_in_thread(app) as url:
        body = chat_body(USER, f"bot:{bot}", detente={**base, **extension})
        status, payload = raw_post(url, body)
    assert status == 400 and message in assert_openai_error(payload)


def test_unknown_routes_and_methods_answer_in_the_openai_format(tit_for_tat):
    parts = urlsplit(tit_for_tat)
    for method, path, status in [("GET", "/nowhere", 404), ("GET", "/v1/chat/completions", 405)]:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.request(method, path)
        response = connection.getresponse()
        assert response.status == status
        assert_openai_error(json.loads(response.read()))
        connection.close()


def test_a_request_waits_and_runs_for_a_bounded_time():
    policy = Counting(delay=1.0)
    limits = ServeLimits(request_timeout=0.3, max_pending=3)
    with serve_in_thread(create_app(policy, "ipd", make_protocol("ipd"), limits=limits)) as url:
        body = chat_body(USER)
        start = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: raw_post(url, body), range(4)))
        elapsed = time.monotonic() - start
        statuses = sorted(status for status, _ in results)
        # one reached the agent (504: still running at 0.3 s), two waited behind it (503), one
        # found the queue full (503 at once); all answered long before the agent finished
        assert statuses == [503, 503, 503, 504] and elapsed < 0.9
        assert all(assert_openai_error(payload) for _, payload in results)
        assert policy.calls == 1
        time.sleep(1.0)  # the agent finishes its call
        policy.delay = 0.0
        assert raw_post(url, body)[0] == 200


def test_a_chat_game_played_without_messages_is_asked_only_for_moves():
    silent = make_config("trust-split", {"messages_per_player": 0})
    app = create_app(Echo(), "trust-split", make_protocol("trust-split"), config=silent)
    with serve_in_thread(app) as url:
        reply = client(url).chat.completions.create(
            model="lm:echo", messages=[{"role": "user", "content": "your turn"}]
        )
    assert reply.choices[0].message.content == f"{Kind.MOVE.value}:{'your turn'[::-1]}"


def test_a_mixed_load_of_good_and_bad_requests_fails_no_good_one():
    """180 good requests and 90 bad ones, 24 at a time over shared keep-alive connections."""
    app = create_app(Echo(), "trust-split", make_protocol("trust-split"))
    bad_bodies = [
        chat_body([*USER, {"role": "assistant", "content": "x"}], "lm:echo"),
        b'{"model": "lm:echo", "messages": [{"role": "user", "content": "\\udc00"}]}',
        chat_body([{"role": "user", "content": "z" * 70_000}], "lm:echo"),
    ]
    with serve_in_thread(app) as url:
        api = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=30)

        def good(i: int) -> str:
            messages = [{"role": "user", "content": f"q{i}"}]
            reply = api.chat.completions.create(model="lm:echo", messages=messages)
            return reply.choices[0].message.content or ""

        def bad(i: int) -> int:
            if i % 2:  # through the same client (and its connections) as the good ones
                try:
                    api.chat.completions.create(
                        model="lm:echo", messages=[*USER, {"role": "assistant", "content": "x"}]
                    )
                except openai.BadRequestError as error:
                    return error.status_code
                return 200
            return raw_post(url, bad_bodies[i % 3])[0]

        jobs = [("good", i) for i in range(180)] + [("bad", i) for i in range(90)]
        random.Random(0).shuffle(jobs)
        with ThreadPoolExecutor(24) as pool:
            futures = [pool.submit(good if kind == "good" else bad, i) for kind, i in jobs]
            results = [(job, f.result(timeout=60)) for job, f in zip(jobs, futures, strict=True)]
    for (kind, i), result in results:
        if kind == "good":
            assert result == f"{Kind.MESSAGE.value}:{f'q{i}'[::-1]}"
        else:
            assert result == 400


def test_serve_binds_before_it_says_serving_and_bad_ports_are_one_line_errors():
    command = [sys.executable, "-m", "detente.cli", "serve", "bot:grim", "--game", "ipd"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for ports in (["--port", str(port)], ["--port", "99999"]):
            done = subprocess.run([*command, *ports], capture_output=True, text=True, timeout=60)
            assert done.returncode == 1 and "serving" not in done.stdout
            (line,) = done.stderr.strip().splitlines()
            assert line.startswith("detente: error:") and ports[1] in line


# ---- a plain OpenAI client: the game's own chat, aliases, streaming, sampling parameters ------


def played_chats(game: str, bots: Sequence[str], style: str, options: dict | None = None):
    """One game of two bots through the rollout; per seat, the chat of each of its decisions
    (as the rollout sent it) and the reply the rollout got."""
    protocol = make_protocol(game, style)
    match = Match(
        make_game(game, make_config(game, options), 7), tuple(make_bot(game, b) for b in bots), "g"
    )
    (record,) = play([match], protocol, seed=3)
    chats = {}
    for seat in record.seats:
        messages, decisions = [{"role": "system", "content": seat.system}], []
        for turn in seat.turns:
            messages.append({"role": "user", "content": turn.prompt})
            decisions.append((list(messages), turn.reply))
            messages.append({"role": "assistant", "content": turn.reply})
        chats[seat.player] = decisions
    return chats


@pytest.mark.parametrize("style", ["full", "compact"])
@pytest.mark.parametrize("seat", [0, 1])
def test_a_bot_answers_the_games_own_chat_without_the_extension(style, seat):
    """Every decision of a game the rollout played, asked again over HTTP with the chat alone,
    gets the reply the bot gave in the game (its events read back from the chat)."""
    bots = ["random", "random"]
    bots[seat] = "wsls"  # reads its own move, the other's and the payoffs: all from the chat
    decisions = played_chats("ipd", bots, style)[seat]
    app = create_app(make_bot("ipd", "wsls"), "ipd", make_protocol("ipd", style))
    with serve_in_thread(app) as url:
        api = client(url)
        for messages, reply in decisions:
            completion = api.chat.completions.create(model="bot:wsls", messages=messages)
            assert completion.choices[0].message.content == reply
    assert len(decisions) == 10


def test_a_chat_the_server_cannot_read_gets_400_saying_where(tit_for_tat):
    (messages, _), (later, _) = played_chats("ipd", ["tit-for-tat", "random"], "full")[0][:2]
    api = client(tit_for_tat)
    assert api.chat.completions.create(model="tit-for-tat", messages=later).choices
    tampered = [*later[:-1], {"role": "user", "content": later[-1]["content"].replace("1", "9")}]
    wrong_rules = [{"role": "system", "content": "You play chess."}, *messages[1:]]
    doubled = [*messages, *messages[1:]]
    for chat, says in [
        (tampered, "user message 2 is 'Round 9 result"),
        (wrong_rules, "the system prompt is not ipd's rules for any seat"),
        (doubled, "message 2 is a user message: a seat's chat alternates"),
        (USER, "user message 1 is 'Your choice (<A> or <B>):', where the game shows 'Round 1."),
    ]:
        with pytest.raises(openai.BadRequestError, match="cannot be read") as caught:
            api.chat.completions.create(model="tit-for-tat", messages=chat)
        assert says in caught.value.message and "`detente` extension" in caught.value.message
        assert caught.value.code == "chat_unreadable" and caught.value.param == "messages"


def test_a_bot_of_a_game_with_random_deals_needs_the_extension():
    """Split deals values from the game's seed, which the chat does not hold: 400 without the
    extension, the reply with it."""
    (messages, reply), *_ = played_chats("split", ["half", "greedy"], "full")[0]
    app = create_app(make_bot("split", "half"), "split", make_protocol("split"))
    with serve_in_thread(app) as url:
        with pytest.raises(openai.BadRequestError, match="`detente` extension"):
            client(url).chat.completions.create(model="half", messages=messages)
        game = make_game("split", None, 7)
        extension = {"game": "split", "player": 0, "kind": "move",
                     "events": encode_events(game.events(0))}  # fmt: skip
        completion = client(url).chat.completions.create(
            model="half", messages=messages, extra_body={"detente": extension}
        )
    assert completion.choices[0].message.content == reply


def test_the_agent_answers_to_its_aliases_and_an_unknown_name_gets_404_with_a_suggestion():
    app = create_app(make_bot("ipd", "tit-for-tat"), "ipd", make_protocol("ipd"),
                     aliases=["gpt-4o-mini"])  # fmt: skip
    (messages, _), *_ = played_chats("ipd", ["tit-for-tat", "grim"], "full")[0]
    with serve_in_thread(app) as url:
        api = client(url)
        (card,) = api.models.list().data
        assert card.id == "bot:tit-for-tat" and card.aliases == ["tit-for-tat", "gpt-4o-mini"]
        for name in ["bot:tit-for-tat", "tit-for-tat", "gpt-4o-mini"]:
            completion = api.chat.completions.create(model=name, messages=messages)
            assert completion.model == "bot:tit-for-tat"
            assert api.models.retrieve(name).id == "bot:tit-for-tat"
        with pytest.raises(openai.NotFoundError, match=r"did you mean tit-for-tat\?") as caught:
            api.chat.completions.create(model="tit-for-tot", messages=messages)
        assert caught.value.code == "model_not_found" and caught.value.param == "model"
        assert "also as tit-for-tat, gpt-4o-mini" in caught.value.message
        with pytest.raises(openai.NotFoundError, match="did you mean"):
            api.models.retrieve("bot:tit-for-tot")


def test_model_names_of_a_run_are_its_spec_and_its_folder():
    assert model_names("run:runs/ipd-s0@12") == (
        "run:runs/ipd-s0@12", "runs/ipd-s0@12", "ipd-s0@12", "run:ipd-s0@12"
    )  # fmt: skip
    assert model_names("lm:tiny", ["x", "tiny"]) == ("lm:tiny", "tiny", "x")
    assert model_names("human") == ("human",)


class Words(Policy):
    """A reply of several words, whitespace and all (to reassemble from a stream)."""

    name = "lm:words"

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        text = "<<message_start>> I  keep\n5, you  keep 5 <<message_end>>"
        return [Reply(text, usage={"prompt_tokens": 3, "completion_tokens": 9}) for _ in requests]


@pytest.mark.parametrize("max_tokens", [None, 30])
def test_a_streamed_reply_reassembles_to_the_plain_one(max_tokens):
    app = create_app(Words(), "trust-split", make_protocol("trust-split"))
    options = {} if max_tokens is None else {"max_tokens": max_tokens}
    with serve_in_thread(app) as url:
        api = client(url)
        whole = api.chat.completions.create(model="words", messages=USER, **options)
        stream = api.chat.completions.create(
            model="words", messages=USER, stream=True, stream_options={"include_usage": True},
            **options,
        )  # fmt: skip
        chunks = list(stream)
        with pytest.raises(openai.NotFoundError):  # an error comes before any event
            api.chat.completions.create(model="nobody", messages=USER, stream=True)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices]
    assert len(pieces) > 3 and chunks[0].choices[0].delta.role == "assistant"
    assert "".join(p or "" for p in pieces) == whole.choices[0].message.content
    finished = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finished[:-1] == [None] * (len(finished) - 1)
    assert finished[-1] == whole.choices[0].finish_reason == ("stop" if max_tokens is None
                                                              else "length")  # fmt: skip
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].model == "lm:words"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens == 12


def test_an_agent_that_plays_its_own_policy_refuses_other_sampling(tit_for_tat):
    (messages, _), *_ = played_chats("ipd", ["tit-for-tat", "grim"], "full")[0]
    api = client(tit_for_tat)

    def ask(**options: Any) -> Any:
        return api.chat.completions.create(model="tit-for-tat", messages=messages, **options)

    assert ask(temperature=1, top_p=1).choices[0].message.content == "<A>"
    for options, param in [
        ({"temperature": 0.2}, "temperature"),
        ({"temperature": 0}, "temperature"),
        ({"top_p": 0.5}, "top_p"),
        ({"stop": ["\n"]}, "stop"),
        ({"logprobs": True}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"max_tokens": 2, "max_completion_tokens": 3}, "max_completion_tokens"),
    ]:
        with pytest.raises(openai.BadRequestError, match=param) as caught:
            ask(**options)
        assert caught.value.param == param
    for options, param in [({"max_tokens": 0}, "max_tokens"), ({"temperature": 3}, "temperature")]:
        with pytest.raises(openai.BadRequestError, match=param) as caught:
            ask(**options)
        assert caught.value.param == param
    cut = ask(max_tokens=2).choices[0]
    assert (cut.message.content, cut.finish_reason) == ("<A", "length")
    whole = ask(max_completion_tokens=3).choices[0]
    assert (whole.message.content, whole.finish_reason) == ("<A>", "stop")


# ---- a trained run, asked by a plain client ---------------------------------------------------


@pytest.fixture
def run_chat(trained_ipd_run: Path) -> list[dict]:
    """The compact-style chat of a seat at its last decision in a game of the run's options."""
    decisions = played_chats("ipd", ["tit-for-tat", "random"], "compact", {"rounds": 3})[0]
    return decisions[-1][0]


def test_a_run_answers_a_plain_move_request_with_a_move_sampled_as_trained(
    trained_ipd_run: Path, run_chat: list[dict]
):
    """ipd-adalign-tiny trained with compact prompts and constrained moves: a plain request
    (the chat alone) is read as a move and sampled constrained, so even at temperature 2 every
    reply is a legal move; at temperature 0 the reply is the same for any seed."""
    spec = f"run:{trained_ipd_run}"
    with make_agent(spec, "ipd") as policy:
        app = agent_app(policy, "ipd", as_trained([spec]), aliases=["detente"])
        with serve_in_thread(app) as url:
            api = client(url, "none")
            hot = [api.chat.completions.create(model="detente", messages=run_chat, seed=s,
                                               temperature=2.0) for s in range(6)]  # fmt: skip
            greedy = {api.chat.completions.create(model="run", messages=run_chat, seed=s,
                                                  temperature=0).choices[0].message.content
                      for s in range(3)}  # fmt: skip
            assert api.models.list().data[0].id == spec
    assert {c.choices[0].message.content for c in hot} <= {"<A>", "<B>"}
    assert all(c.choices[0].finish_reason == "stop" for c in hot)
    assert len(greedy) == 1 and greedy <= {"<A>", "<B>"}


def test_a_run_honours_max_tokens(trained_ipd_run: Path, run_chat: list[dict]):
    """Unconstrained, a run samples a move within its move budget (8 tokens, not the 32 of a
    message: the chat is read as a move) and within max_tokens, flagged "length" when cut;
    constrained, a move longer than max_tokens is a 400."""
    spec = f"run:{trained_ipd_run}"
    with make_agent(spec, "ipd") as policy:
        free = agent_app(policy, "ipd", as_trained([spec], constrain_moves=False))
        with serve_in_thread(free) as url:
            api = client(url)
            budget = [api.chat.completions.create(model=spec, messages=run_chat, seed=s,
                                                  temperature=2.0) for s in range(4)]  # fmt: skip
            cut = [api.chat.completions.create(model=spec, messages=run_chat, seed=s,
                                               temperature=2.0, max_tokens=1)
                   for s in range(4)]  # fmt: skip
        constrained = agent_app(policy, "ipd", as_trained([spec]))
        with serve_in_thread(constrained) as url:
            api = client(url)
            move = api.chat.completions.create(model=spec, messages=run_chat, seed=0)
            tokens = move.usage.completion_tokens
            with pytest.raises(openai.BadRequestError, match="max_tokens") as caught:
                api.chat.completions.create(model=spec, messages=run_chat, max_tokens=tokens - 1)
            assert caught.value.param == "max_tokens"
            fits = api.chat.completions.create(
                model=spec, messages=run_chat, seed=0, max_tokens=tokens
            )
    assert all(c.usage.completion_tokens <= 8 for c in budget)
    for completion in cut:
        (choice,) = completion.choices
        assert completion.usage.completion_tokens == 1
        assert choice.finish_reason == ("stop" if choice.message.content == "" else "length")
    assert tokens >= 2 and fits.choices[0].message.content == move.choices[0].message.content
