"""Sessions: one conversation's token sequence and KV cache, kept between calls.

The delta of a call is derived from the chat template: the whole chat is rendered as text, the
text already consumed (the previous prompt text plus the previous reply text) must be its
prefix, and only the rest is encoded. Where the template renders messages locally (see
:meth:`ChatFormat.render_tail`), only the new messages are rendered, which gives the same rest. If the previous reply ended with a sampled stop token and
the rest starts with that token's text (the template's own end of turn), that text is dropped
from the delta, since the model has already seen the token; otherwise (no stop sampled, as when
``max_new_tokens`` ran out, or a different stop token such as eos) the template's end-of-turn
text is encoded as part of the delta. Nothing is thus duplicated or dropped.

The session's tokens equal the tokens of re-encoding the whole rendered chat, except (1) in and
at the edges of reply spans, which hold the tokens that were *sampled* rather than the canonical
tokenisation of the reply text (e.g. "H"+"ello" for "Hello", or a reply starting with a newline
that a re-encode would merge with the header's newline); and (2) for templates whose end of turn
is plain text rather than a special token, where, after a reply cut by ``max_new_tokens``, a
re-encode might merge the reply's last characters with the delta's first ones. The text always
agrees: decoding the session's tokens gives the rendered chat (barring a reply cut inside a
multi-byte character). Templates whose rendering of a longer chat does not extend the rendering
of a shorter one are rejected with an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from detente.lm.chat import ChatFormat
from detente.lm.kv import KV, crop, kv_length
from detente.lm.types import GenerationRequest, GenerationResult


@dataclass
class Session:
    """State of one conversation after a call."""

    adapter: str | None
    ids: list[int]  # every token seen or sampled so far, in order
    kv: KV | None  # keys/values of ids[: kv_length(kv)]
    messages: tuple[dict[str, str], ...]  # messages of the last call
    prompt_text: str  # rendered chat of the last call (with the assistant header)
    reply_text: str  # the last reply's text
    turn_start: int  # len(ids) before the last call's prompt tokens
    prompt_end: int  # len(ids) after the last call's prompt tokens
    stop: int | None  # stop token that ended the last reply, if one did
    last_used: int = 0  # engine clock of the last call (for cache eviction)


@dataclass
class Turn:
    """What one call feeds for one session, before sampling."""

    ids: list[int]  # the session's sequence up to and including the new prompt tokens
    turn_start: int  # where this call's prompt tokens start in ``ids``
    kv: KV | None  # reusable cache, covering ids[: kv_length(kv)] (at least one token left)
    prompt_text: str

    @property
    def prompt_ids(self) -> list[int]:
        return self.ids[self.turn_start :]


def plan_turns(
    sessions: Sequence[Session | None], requests: Sequence[GenerationRequest], chat: ChatFormat
) -> list[Turn]:
    """The tokens to feed for each request, given its session's state (None: a new session).

    Texts are rendered per request (only the new messages where the template allows it) and
    encoded in one batch.
    """
    plans = [_plan(s, r, chat) for s, r in zip(sessions, requests, strict=True)]
    encoded = iter(chat.encode_batch([p.delta for p in plans if p.delta is not None]))
    turns = []
    for plan in plans:
        turn = plan.turn
        if plan.delta is not None:
            turn = _turn(turn.ids + next(encoded), turn.turn_start, turn.kv, turn.prompt_text)
        turns.append(turn)
    return turns


def reply_text(chat: ChatFormat, tokens: Sequence[int], finished: bool) -> str:
    """The text of a sampled reply: its tokens without the stop token that ended it."""
    return chat.decode(tokens[:-1] if finished else tokens)


def finish_turn(
    request: GenerationRequest,
    turn: Turn,
    tokens: Sequence[int],
    logprobs: Sequence[float],
    finished: bool,
    text: str,
    allowed: tuple[tuple[int, ...], ...] | None = None,
) -> tuple[Session, GenerationResult]:
    """The session after a sampled reply (without a KV cache) and the request's result;
    ``allowed``: a constrained reply's allowed tokens per step (None: unconstrained)."""
    session = Session(
        adapter=request.adapter,
        ids=turn.ids + list(tokens),
        kv=None,
        messages=request.messages,
        prompt_text=turn.prompt_text,
        reply_text=text,
        turn_start=turn.turn_start,
        prompt_end=len(turn.ids),
        stop=tokens[-1] if finished else None,
    )
    result = GenerationResult(
        text=text,
        prompt_ids=tuple(turn.prompt_ids),
        token_ids=tuple(tokens),
        logprobs=tuple(logprobs),
        finished=finished,
        constrained=allowed is not None,
        allowed=allowed,
    )
    return session, result


@dataclass
class _Plan:
    """A turn whose ``delta`` text (if any) is still to be encoded and appended to its ids."""

    turn: Turn
    delta: str | None


def _plan(session: Session | None, request: GenerationRequest, chat: ChatFormat) -> _Plan:
    """The turn of ``request`` before its new text is encoded (checks the request first)."""
    if session is None:
        text = chat.render(request.messages)
        return _Plan(Turn(ids=[], turn_start=0, kv=None, prompt_text=text), text)
    where = f"session {request.session_id!r}"
    if request.adapter != session.adapter:
        raise ValueError(
            f"{where} uses adapter {session.adapter!r}, not {request.adapter!r}; "
            "a session keeps one adapter (end it to start over)"
        )
    if request.messages == session.messages:
        ids = session.ids[: session.prompt_end]
        return _Plan(_turn(ids, session.turn_start, session.kv, session.prompt_text), None)
    _check_continues(session, request.messages, where)
    consumed = session.prompt_text + session.reply_text
    tail = chat.render_tail(request.messages, len(session.messages))
    head = chat.generation_prompt + session.reply_text
    if tail is not None and tail.startswith(head):
        rest = tail[len(head) :]
        text = consumed + rest
    else:
        text = chat.render(request.messages)
        if not text.startswith(consumed):
            raise ValueError(
                f"{where}: the chat template's rendering of the longer chat does not extend the "
                "previous one, so the new tokens cannot be derived"
            )
        rest = text[len(consumed) :]
    if session.stop is not None:
        stop_text = chat.decode([session.stop])
        if rest.startswith(stop_text):
            rest = rest[len(stop_text) :]
    turn = Turn(ids=session.ids, turn_start=len(session.ids), kv=session.kv, prompt_text=text)
    return _Plan(turn, rest)


def _turn(ids: list[int], turn_start: int, kv: KV | None, text: str) -> Turn:
    """A turn whose cache is cropped to leave at least one token to feed."""
    if kv is not None and kv_length(kv) >= len(ids):
        kv = crop(kv, len(ids) - 1)
    return Turn(ids=ids, turn_start=turn_start, kv=kv, prompt_text=text)


def _check_continues(session: Session, messages: tuple[dict[str, str], ...], where: str) -> None:
    """``messages`` must be the previous messages, the reply as returned, then new messages."""
    n = len(session.messages)
    if len(messages) < n + 2 or messages[:n] != session.messages:
        raise ValueError(
            f"{where}: messages neither repeat the previous call's (re-sample) nor extend them "
            "with the reply and a new message; end the session to start a new conversation"
        )
    reply = messages[n]
    if reply.get("role") != "assistant" or reply.get("content") != session.reply_text:
        raise ValueError(
            f"{where}: message {n} must be the assistant reply exactly as returned "
            f"(GenerationResult.text = {session.reply_text!r}), got {reply!r}"
        )
