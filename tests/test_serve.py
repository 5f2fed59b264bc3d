"""``detente serve``: the OpenAI-compatible endpoint as the official ``openai`` client sees it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from detente.games import Kind, make_game
from detente.games.codec import encode_events
from detente.games.ipd import Move
from detente.policies.base import Policy, Reply, Request
from detente.policies.bots import make_bot
from detente.protocol import make_protocol
from detente.serve import create_app, serve_in_thread


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
        [*command, "--port", str(port)],
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
        if Path("/proc/net/tcp").exists():
            assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert f"at http://127.0.0.1:{port}/v1" in output
