"""Item bundles shared by the multi-item games (Split, Deal or No Deal).

A bundle counts units of the three item types in one fixed order, :data:`ITEM_TYPES`
(hats, books, balls); the same tuple type holds stocks, proposals (what a player keeps) and
per-unit values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

from detente.games.base import IllegalAction

ITEM_TYPES: tuple[str, ...] = ("hats", "books", "balls")
MAX_UNITS = 10  # most units of one type a proposal can hold (the text format writes 0..10)


class Items(NamedTuple):
    """Integer counts (or per-unit values) of hats, books and balls, in that order."""

    hats: int
    books: int
    balls: int


def worth(counts: Sequence[float], values: Sequence[float]) -> float:
    """``Σ_t counts_t · values_t`` over the item types."""
    return math.fsum(c * v for c, v in zip(counts, values, strict=True))


def bundles(limits: Items) -> list[Items]:
    """Every bundle ``k`` with ``0 ≤ k_t ≤ limits_t``, in lexicographic order."""
    return [Items(*k) for k in itertools.product(*(range(n + 1) for n in limits))]


def check_bundle(move: object, limits: Items) -> None:
    """Raise ``IllegalAction`` unless ``move`` is ``Items`` of ints, ``0 ≤ k_t ≤ limits_t``."""
    if not isinstance(move, Items) or any(
        isinstance(k, bool) or not isinstance(k, int) for k in move
    ):
        raise IllegalAction(f"a proposal must be Items of ints, got {move!r}")
    if any(not 0 <= k <= n for k, n in zip(move, limits, strict=True)):
        raise IllegalAction(f"proposal {tuple(move)} outside 0..{tuple(limits)}")
