"""A person at a terminal: sees the rules, the history and what is asked; types a reply."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from detente.games.base import player_name
from detente.policies.base import PlayStopped, Policy, Reply, Request
from detente.protocol.base import InvalidReply

QUIT_COMMANDS = ("/quit", "/exit")


class HumanQuit(PlayStopped):
    """The person asked to stop (``/quit``, end of input or Ctrl-C)."""

    def __init__(self, message: str = "the human player stopped (/quit or end of input)") -> None:
        super().__init__(message)


class HumanPolicy(Policy):
    """Asks the person for each request, one at a time, re-asking until the input parses.

    Accepts the exact protocol format or the game's shorthand; replies with the canonical text,
    so the transcript reads like any other agent's.
    """

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        """A closed standard input (or output) is a ``ValueError`` here, not a crash at the
        first move."""
        self.name = "human"
        stdin = stdin if stdin is not None else sys.stdin
        stdout = stdout if stdout is not None else sys.stdout
        for stream, which in ((stdin, "input"), (stdout, "output")):
            if stream is None or stream.closed:
                raise ValueError(f"the human agent needs a terminal, and standard {which} is closed")
        self._in, self._out = stdin, stdout
        self._shown: set[str] = set()
        self._last_prompt: dict[str, int] = {}  # session -> number of messages last shown

    def _say(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        return [self._ask(request) for request in requests]

    def _ask(self, request: Request) -> Reply:
        if request.session_id not in self._shown:
            self._shown.add(request.session_id)
            self._say(f"\n=== You are {player_name(request.player)} ===")
            self._say(request.messages[0]["content"])
        if self._last_prompt.get(request.session_id) == len(request.messages):
            self._say("That reply was not accepted: the rules do not allow that move. Try again.")
        else:
            self._say("\n" + request.messages[-1]["content"])
        self._last_prompt[request.session_id] = len(request.messages)
        hint = request.protocol.human_hint(request.kind)
        while True:
            self._out.write(f"[{hint}; /quit to stop] > ")
            self._out.flush()
            try:
                line = self._in.readline()
            except KeyboardInterrupt:
                raise HumanQuit from None
            if not line or line.strip() in QUIT_COMMANDS:
                raise HumanQuit
            try:
                action = request.protocol.parse_human(request.kind, line.rstrip("\n"))
            except InvalidReply as error:
                self._say(f"Not understood ({error}). Try again.")
                continue
            return Reply(request.protocol.format(request.kind, action))
