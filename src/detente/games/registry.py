"""The one registration of a game: its rules, text protocol, bots, measures and recipes.

A game is a module (or a folder) plus one :func:`register_game` call. Every layer finds what it
needs in the entry: the rules (``games``), the protocol (``protocol``), the bots (``policies``),
the behaviour measures and report notes (``evaluate``), the persona mix of the warm start and a
preset fragment (``config``). Parts are given as objects or as ``"module:attribute"``
references, imported on first use; the built-in games use references, so that this bottom layer
imports no layer above it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detente.suggest import did_you_mean

Part = Any  # an object, or a "module:attribute" reference to it


def resolve(part: Part) -> Any:
    """``part`` itself, or the attribute a ``"module:attribute"`` reference names."""
    if not isinstance(part, str):
        return part
    module, _, attribute = part.partition(":")
    if not attribute:
        raise ValueError(f"{part!r} is not a 'module:attribute' reference")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Headline:
    """A game's line in the demo table: the bots of its face-off, the behaviour measures shown
    for self-play and the bots whose reward against each method is shown."""

    bots: tuple[str, ...] = ()
    measures: tuple[str, ...] = ()
    reward_against: tuple[str, ...] = ()


@dataclass(frozen=True)
class GameEntry:
    """Everything registered for one game.

    rules: the ``Game`` subclass; protocol: its ``Protocol`` subclass; bots: its ``Bot``
    subclasses (a tuple, or a reference to one); measures: ``(seats) -> {name: value}``, the
    behaviour measures of face-offs, training metrics and reports (None: rewards only);
    turn_note: ``(record, turn, player) -> str``, a note on a valid reply in transcripts (e.g. a
    hand report checked against the truth); personas: the warm start's persona mix, bot name
    -> weight (empty: every bot alike); preset: the game's preset fragment (the contents of a
    ``presets/games/NAME.yaml``) when it ships none; headline: its line in the demo table;
    columns / facts: the round infos a transcript shows, info key -> label, per player (a list
    with one entry per seat) and round-wide; prior: ``(seats) -> {name: Rate}``, the measures
    of a model's prior (``detente prior``), probed against the bots ``prior_probes``.
    """

    name: str
    rules: Part
    protocol: Part
    bots: Part = ()
    measures: Part | None = None
    turn_note: Part | None = None
    personas: Mapping[str, float] = field(default_factory=dict)
    preset: Mapping[str, Any] | None = None
    headline: Headline = field(default_factory=Headline)
    columns: Mapping[str, str] = field(default_factory=dict)
    facts: Mapping[str, str] = field(default_factory=dict)
    prior: Part | None = None
    prior_probes: tuple[str, ...] = ()

    def rules_type(self) -> type:
        return resolve(self.rules)

    def protocol_type(self) -> type:
        return resolve(self.protocol)

    def bot_types(self) -> tuple[type, ...]:
        bots = resolve(self.bots)
        return tuple(resolve(b) for b in bots)

    def measure_fn(self) -> Callable[..., dict[str, float]] | None:
        return None if self.measures is None else resolve(self.measures)

    def turn_note_fn(self) -> Callable[..., str] | None:
        return None if self.turn_note is None else resolve(self.turn_note)

    def prior_fn(self) -> Callable[..., dict[str, Any]] | None:
        return None if self.prior is None else resolve(self.prior)


_ENTRIES: dict[str, GameEntry] = {}


def register_game(entry: GameEntry, *, replace: bool = False) -> GameEntry:
    """Make ``entry`` known by its name (a second entry of the same name is an error unless
    ``replace``)."""
    if entry.name in _ENTRIES and not replace:
        raise ValueError(f"a game named {entry.name!r} is already registered")
    _ENTRIES[entry.name] = entry
    return entry


def unregister_game(name: str) -> None:
    """Forget a registered game (e.g. a game a test defined)."""
    _ENTRIES.pop(name, None)


def game_entry(name: str) -> GameEntry:
    """The entry of game ``name``; a one-line error with the known names otherwise."""
    try:
        return _ENTRIES[name]
    except KeyError:
        known = sorted(_ENTRIES)
        raise ValueError(
            f"unknown game {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}"
        ) from None


def game_names() -> list[str]:
    return sorted(_ENTRIES)


def _builtin(name: str, module: str, rules: str, protocol: str, **parts: Any) -> GameEntry:
    """A shipped game: rules ``detente.games.MODULE:RULES``, protocol
    ``detente.protocol.MODULE:PROTOCOL``, bots ``detente.policies.bots.MODULE:BOTS``."""
    return GameEntry(
        name,
        rules=f"detente.games.{module}:{rules}",
        protocol=f"detente.protocol.{module}:{protocol}",
        bots=f"detente.policies.bots.{module}:BOTS",
        **parts,
    )


_MEASURES = "detente.evaluate.metrics"
for _entry in (
    _builtin(
        "ipd", "ipd", "IPD", "IPDProtocol",
        measures=f"{_MEASURES}:ipd_measures",
        prior="detente.evaluate.prior:ipd_prior",
        prior_probes=("random", "alternator"),
        columns={"moves": "move"},
        # One Markov persona, so the prior is known exactly: P(C) 0.95 first and after the other
        # cooperated, 0.6 after it defected (cooperative, forgiving and conditional).
        personas={"forgiving": 1.0},
        headline=Headline(
            ("always-defect", "always-cooperate", "tit-for-tat"),
            ("coop_rate", "p_coop_after_c", "p_coop_after_d"),
            ("always-defect",),
        ),
    ),
    _builtin(
        "trust-split", "trust_split", "TrustSplit", "TrustSplitProtocol",
        measures=f"{_MEASURES}:trust_split_measures",
        prior="detente.evaluate.prior:trust_split_prior",
        prior_probes=("honest", "greedy"),
        turn_note=f"{_MEASURES}:hand_note",
        columns={"hands": "hand", "upper": "position", "values": "value per unit",
                 "claims": "claim (coins)", "units": "received"},
        facts={"opener": "opens", "coins": "coins"},
        # Honest hand reports and winner-takes-all claims; the forgiving persona retaliates
        # after being cheated with probability 0.4 only.
        personas={"honest": 0.4, "forgiving": 0.6},
        headline=Headline(
            ("greedy", "liar", "honest"), ("honesty", "claim_upper", "claim_lower"),
            ("greedy", "liar"),
        ),
    ),
    _builtin(
        "split", "split", "Split", "SplitProtocol",
        measures=f"{_MEASURES}:split_measures",
        columns={"values": "value per unit", "proposals": "proposal (keeps)", "units": "received"},
        facts={"efficiency": "efficiency"},
        personas={"welfare": 0.6, "half": 0.2, "greedy": 0.2},
    ),
    _builtin(
        "dond", "dond", "Dond", "DondProtocol",
        measures=f"{_MEASURES}:dond_measures",
        columns={"values": "value per unit", "proposals": "proposal (keeps)"},
        facts={"opener": "opens", "stock": "stock", "agreed": "deal"},
        personas={"fair": 0.8, "greedy": 0.2},
    ),
    _builtin(
        "multi-ipd", "multi_ipd", "MultiIPD", "MultiIPDProtocol",
        measures=f"{_MEASURES}:multi_ipd_measures",
        columns={"moves": "moves toward the co-players"},
    ),
    _builtin(
        "public-goods", "public_goods", "PublicGoods", "PublicGoodsProtocol",
        measures=f"{_MEASURES}:public_goods_measures",
        columns={"contributions": "contribution"},
        facts={"pot": "pot", "share": "share each"},
        # Conditional cooperation dominates, with some unconditional givers, grim triggers and
        # free riders.
        personas={"conditional": 0.6, "full-contributor": 0.2, "grim": 0.1, "free-rider": 0.1},
    ),
    _builtin(
        "commons", "commons", "Commons", "CommonsProtocol",
        measures=f"{_MEASURES}:commons_measures",
        columns={"requests": "request", "harvests": "catch"},
        facts={"stock": "stock", "remaining": "left", "collapsed": "collapsed"},
        # Mostly the sustainable catch, some retaliators, a few greedy fishers.
        personas={"sustainable": 0.7, "retaliator": 0.2, "greedy": 0.1},
    ),
):  # fmt: skip
    register_game(_entry)
