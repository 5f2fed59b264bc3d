"""Constrained replies: a token trie over the allowed replies, walked one sampled token at a time.

Each allowed reply is tokenised as it appears after the assistant header, followed by the
end-of-turn token; at every step only the children of the current trie node may be sampled, so
the finished reply is always exactly one allowed string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    terminal: bool = False


class TokenTrie:
    """A prefix tree of token sequences; every sequence must end on a leaf (a stop token)."""

    def __init__(self, sequences: Iterable[Sequence[int]]) -> None:
        self.root = _Node()
        self.depth = 0
        for seq in sequences:
            if not seq:
                raise ValueError("empty token sequence in a trie")
            node = self.root
            for token in seq:
                if node.terminal:
                    raise ValueError(f"sequence {list(seq)} extends another one")
                node = node.children.setdefault(token, _Node())
            if node.children:
                raise ValueError(f"sequence {list(seq)} is a prefix of another one")
            node.terminal = True
            self.depth = max(self.depth, len(seq))


class TrieWalk:
    """The position of one reply in a trie: which tokens may come next."""

    def __init__(self, trie: TokenTrie) -> None:
        self.trie = trie
        self._node = trie.root

    def allowed(self) -> list[int]:
        """Token ids allowed at this step (never empty before the walk is done)."""
        return list(self._node.children)

    def advance(self, token: int) -> None:
        """Move past ``token``; it must be allowed."""
        if token not in self._node.children:
            raise ValueError(f"token {token} is not allowed here")
        self._node = self._node.children[token]

    @property
    def done(self) -> bool:
        """True once a whole allowed sequence has been walked."""
        return not self._node.children
