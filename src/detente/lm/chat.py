"""The tokenizer's chat format: rendering, exact encode/decode, the end-of-turn token.

All text↔token conversions of the engine go through here so that they agree: text is encoded
without added special tokens (the chat template writes them), and decoded verbatim (special
tokens kept, no clean-up of spaces).

Rendering a session's next turn only needs the text its new messages add. Where the template
renders messages locally (checked once per tokenizer on probe chats: a chat's rendering is its
prefix's rendering followed by the rendering of the rest after a fixed stand-in prefix),
:meth:`ChatFormat.render_tail` renders just the new messages; otherwise it declines and the
caller renders the whole chat.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

_MARK = "\x00detente-reply\x00"
# Stands in for a chat's earlier messages when only its new messages are rendered.
_ANCHOR = ({"role": "system", "content": "S"}, {"role": "user", "content": "U"})
_MEMO_SIZE = 16384


class ChatFormat:
    """Chat rendering and exact tokenisation for one tokenizer with a chat template."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the tokenizer has no chat template")
        self.tokenizer = tokenizer
        # Memos of pure functions of their keys (renderings and tokenisations repeat a lot
        # across games), each cleared when it reaches ``_MEMO_SIZE`` entries.
        self._encoded: dict[str, tuple[int, ...]] = {}
        self._tails: dict[tuple[tuple[tuple[str, str], ...], ...], str | None] = {}
        self.end_of_turn = self._find_end_of_turn()
        eos = tokenizer.eos_token_id
        self.stop_ids: frozenset[int] = frozenset(
            {self.end_of_turn} | ({eos} if isinstance(eos, int) else set())
        )
        user = [{"role": "user", "content": "x"}]
        self.generation_prompt = self.render(user)[
            len(self.render(user, generation_prompt=False)) :
        ]
        self.pad_id = self._pad_id()
        self._anchor_text = ""
        self.local = self._renders_locally()

    def render(self, messages: Sequence[dict[str, str]], generation_prompt: bool = True) -> str:
        """The chat as text, ending with the assistant header when ``generation_prompt``."""
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=generation_prompt
        )

    def render_tail(self, messages: Sequence[dict[str, str]], start: int) -> str | None:
        """What ``render(messages)`` appends to ``render(messages[:start], generation_prompt=
        False)``, rendering only ``messages[start:]``; None where the template is not local."""
        return self._tail(messages, start) if self.local else None

    def encode(self, text: str) -> list[int]:
        """Tokens of ``text`` exactly (the template already wrote any special tokens)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` of each text: texts not seen lately in one tokenizer call."""
        new = list(dict.fromkeys(t for t in texts if t not in self._encoded))
        if new:
            if len(self._encoded) + len(new) > _MEMO_SIZE:
                self._encoded.clear()
            ids = self.tokenizer(new, add_special_tokens=False)["input_ids"]
            self._encoded.update(zip(new, map(tuple, ids), strict=True))
        return [list(self._encoded[t]) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` verbatim (special tokens kept, spaces untouched)."""
        return self.tokenizer.decode(
            list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def reply_tokens(self, reply: str) -> list[int]:
        """Tokens of ``reply`` as it is tokenised right after the assistant header.

        Falls back to encoding ``reply`` alone where the header's own tokens would merge with it.
        """
        head = self.encode(self.generation_prompt)
        both = self.encode(self.generation_prompt + reply)
        if both[: len(head)] == head:
            return both[len(head) :]
        return self.encode(reply)

    def _find_end_of_turn(self) -> int:
        """The special token that the template writes right after an assistant message."""
        chat = [{"role": "user", "content": "x"}, {"role": "assistant", "content": _MARK}]
        text = self.render(chat, generation_prompt=False)
        after = text[text.index(_MARK) + len(_MARK) :]
        ids = self.encode(after)
        special = set(self.tokenizer.all_special_ids) | {
            i for i, token in self.tokenizer.added_tokens_decoder.items() if token.special
        }
        if ids and ids[0] in special:
            return ids[0]
        eos = self.tokenizer.eos_token_id
        if not isinstance(eos, int):
            raise ValueError(
                "cannot tell the end-of-turn token: template writes none, no eos token"
            )
        return eos

    def _renders_locally(self) -> bool:
        """Whether, on probe chats with and without a system message, the whole rendering equals
        a prefix's rendering plus :meth:`render_tail` of the rest, at every assistant turn."""
        try:
            self._anchor_text = self.render(_ANCHOR, generation_prompt=False)
            probe = [
                {"role": "system", "content": "Rules.\nPlay well."},
                {"role": "user", "content": "Round 1. Your move?"},
                {"role": "assistant", "content": "<A> I cooperate."},
                {"role": "user", "content": "Round 2: they played <B>."},
                {"role": "assistant", "content": "  <B>\n"},
                {"role": "user", "content": "Round 3."},
            ]
            for chat in (probe, probe[1:]):
                full = self.render(chat)
                for start, message in enumerate(chat):
                    if message["role"] != "assistant":
                        continue
                    head = self.render(chat[:start], generation_prompt=False)
                    with_prompt = self.render(chat[:start])
                    if with_prompt != head + self.generation_prompt or full != head + (
                        self._tail(chat, start) or "\x00"
                    ):
                        return False
            return True
        except Exception:  # any template error: render whole chats instead
            return False

    def _tail(self, messages: Sequence[dict[str, str]], start: int) -> str | None:
        """``messages[start:]`` rendered after the stand-in prefix, without that prefix."""
        key = tuple(tuple(m.items()) for m in messages[start:])
        if key not in self._tails:
            if len(self._tails) >= _MEMO_SIZE:
                self._tails.clear()
            text = self.render([*_ANCHOR, *messages[start:]])
            anchor = self._anchor_text
            self._tails[key] = text[len(anchor) :] if text.startswith(anchor) else None
        return self._tails[key]

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if isinstance(pad, int) else self.end_of_turn
