"""Detente's IPD agents as Axelrod players, and Axelrod tournaments of them.

:class:`DetentePlayer` wraps any IPD policy (``bot:``, ``run:``, ``lm:``, ``api:`` specs) as an
``axelrod.Player``: each Axelrod turn is one decision through detente's own decision path (the
protocol's prompt of the whole history, sampling seeds, invalid-reply retries), on a detente IPD
game that mirrors the Axelrod match (same payoffs, the match's length as its rounds). The
player's seeds come from the match's seed, so a tournament with a seed replays exactly.

:func:`tournament` runs Axelrod's ``Tournament`` of the given agents among the library's
strategies (``classic``: the 15 of Axelrod's first tournament; ``all``: every ordinary strategy
of the library) and reads each agent's rank, median score per turn and cooperation rating from
Axelrod's result set; their plots are saved beside. Needs the ``league`` extra.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:
    import axelrod as axl
except ImportError as error:  # pragma: no cover - the league extra is part of the test set-up
    raise ImportError(
        "Axelrod tournaments need the league extra: pip install 'detente[league]'"
    ) from error

from detente.games.ipd import IPD, IPDConfig, Move
from detente.policies.base import Policy, Reply, Request
from detente.protocol import Style, make_protocol
from detente.rollout.runner import InvalidReplyConfig, Match, SteppedGame

AGENT_SEAT, AXELROD_SEAT = 0, 1
_TO_AXELROD = {Move.COOPERATE: axl.Action.C, Move.DEFECT: axl.Action.D}
_FROM_AXELROD = {action: move for move, action in _TO_AXELROD.items()}
UNKNOWN_LENGTH_ROUNDS = 10_000  # the mirrored game's horizon when the match's length is unknown

# Detente's IPD bots and the Axelrod strategies of the same behaviour (the cross-check pairs);
# those but ``random`` are deterministic, which lets Axelrod cache their matches.
EQUIVALENTS: dict[str, type[axl.Player]] = {
    "bot:always-cooperate": axl.Cooperator,
    "bot:always-defect": axl.Defector,
    "bot:tit-for-tat": axl.TitForTat,
    "bot:grim": axl.Grudger,
    "bot:wsls": axl.WinStayLoseShift,
    "bot:alternator": axl.Alternator,
    "bot:random": axl.Random,
}
DETERMINISTIC = frozenset(EQUIVALENTS) - {"bot:random"}
STRATEGY_SETS = ("classic", "all")


class _AxelrodSide(Policy):
    """The seat the Axelrod opponent plays: its moves are given, never asked for."""

    name = "axelrod-opponent"

    def act(self, requests: Sequence[Request]) -> list[Reply]:
        raise RuntimeError("the Axelrod opponent's moves come from its match")


class DetentePlayer(axl.Player):
    """An IPD policy as an Axelrod player (it sits as Alice in a mirrored detente game)."""

    name = "detente"
    classifier = {
        "memory_depth": float("inf"),
        "stochastic": True,
        "long_run_time": False,
        "inspects_source": False,
        "manipulates_source": False,
        "manipulates_state": False,
        "makes_use_of": set(),
    }
    _games = itertools.count()  # distinct session ids across every clone

    def __init__(
        self,
        policy: Policy | None = None,
        style: str = Style.FULL.value,
        constrain_moves: bool = False,
        tell_horizon: bool = False,
    ) -> None:
        super().__init__()
        if policy is None:
            raise ValueError("DetentePlayer needs a policy")
        self.policy, self.style = policy, style
        self.constrain_moves, self.tell_horizon = constrain_moves, tell_horizon
        self.name = policy.name
        self.classifier["stochastic"] = policy.name not in DETERMINISTIC
        self._stepped: SteppedGame | None = None

    def __repr__(self) -> str:
        return self.name

    def _start(self) -> SteppedGame:
        length = self.match_attributes["length"]
        rounds = int(length) if math.isfinite(length) and length > 0 else UNKNOWN_LENGTH_ROUNDS
        r, p, s, t = (float(x) for x in self.match_attributes["game"].RPST())
        config = IPDConfig(
            rounds=rounds, max_rounds=rounds, reward=r, sucker=s, temptation=t, punishment=p,
            tell_horizon=self.tell_horizon,
        )  # fmt: skip
        random = getattr(self, "_random", None)  # set by Axelrod for a stochastic player
        seed = int(random.random_seed_int()) if random is not None else 0
        game = IPD(config, seed)
        match = Match(game, (self.policy, _AxelrodSide()), f"axelrod-{next(self._games)}")
        invalid = InvalidReplyConfig(constrain_moves=self.constrain_moves)
        protocol = make_protocol(IPD.name, self.style, config)
        return SteppedGame(match, protocol, invalid, seed)

    def strategy(self, opponent: axl.Player) -> axl.Action:
        if self._stepped is None:
            self._stepped = self._start()
        move = self._stepped.decide([AGENT_SEAT])[AGENT_SEAT]
        return _TO_AXELROD[move]

    def update_history(self, play: axl.Action, coplay: axl.Action) -> None:
        """Axelrod's record of the turn, then the same moves (noise included) in the mirror."""
        super().update_history(play, coplay)
        if self._stepped is not None and not self._stepped.game.done:
            self._stepped.act({AGENT_SEAT: _FROM_AXELROD[play], AXELROD_SEAT: _FROM_AXELROD[coplay]})

    def reset(self) -> None:
        self._close()
        super().reset()

    def _close(self) -> None:
        if self._stepped is not None and not self._stepped.game.done:
            self.policy.end_sessions([f"{self._stepped.record().game_id}/{AGENT_SEAT}"])
        self._stepped = None


def strategy_set(name: str) -> list[axl.Player]:
    """Fresh players of an Axelrod strategy set: ``classic`` or ``all``."""
    if name == "classic":
        classes = axl.axelrod_first_strategies
    elif name == "all":
        classes = axl.strategies
    else:
        raise ValueError(f"unknown Axelrod strategy set {name!r}; known: {', '.join(STRATEGY_SETS)}")
    return [cls() for cls in classes]


def axelrod_game(config: IPDConfig | None) -> axl.Game:
    c = config or IPDConfig()
    return axl.Game(r=c.reward, s=c.sucker, t=c.temptation, p=c.punishment)


@dataclass
class TournamentResult:
    """Every player's rank (0 = best, by median normalised score), median score per turn,
    cooperation rating and median wins; ``agents`` are the detente agents' rows."""

    strategies: str
    turns: int
    repetitions: int
    seed: int
    ranking: list[dict[str, Any]]
    agents: list[dict[str, Any]] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        lines = [f"{'agent':40} rank / {len(self.ranking):<4} score  cooperation"]
        for row in self.agents:
            lines.append(
                f"{row['name']:40} {row['rank'] + 1:>4}        {row['median_score']:.3f}  "
                f"{row['cooperation_rating']:.3f}"
            )
        return "\n".join(lines)


def tournament(
    agents: Sequence[Policy],
    strategies: str = "classic",
    turns: int = 10,
    repetitions: int = 5,
    seed: int = 0,
    config: IPDConfig | None = None,
    style: str = Style.FULL.value,
    constrain_moves: bool = False,
    plots: Path | None = None,
) -> tuple[TournamentResult, axl.ResultSet]:
    """An Axelrod tournament of ``agents`` among the strategy set, with Axelrod's result set;
    with ``plots`` a folder, Axelrod's box, win and payoff plots are written there."""
    tell = bool(config and config.tell_horizon)
    ours = [DetentePlayer(a, style, constrain_moves, tell) for a in agents]
    players = ours + strategy_set(strategies)
    names = [str(p) for p in players]
    if len(set(names)) != len(names):
        raise ValueError(f"player names must be distinct: {sorted(names)}")
    run = axl.Tournament(
        players, game=axelrod_game(config), turns=turns, repetitions=repetitions, seed=seed
    )
    results = run.play(progress_bar=False)
    ranking = [
        {
            "rank": int(row.Rank),
            "name": str(row.Name),
            "median_score": float(row.Median_score),
            "cooperation_rating": float(row.Cooperation_rating),
            "wins": float(row.Wins),
            "initial_cooperation": float(row.Initial_C_rate),
            "detente": str(row.Name) in {str(p) for p in ours},
        }
        for row in results.summarise()
    ]
    result = TournamentResult(
        strategies, turns, repetitions, seed, ranking, [r for r in ranking if r["detente"]]
    )
    if plots is not None:
        result.plots = save_plots(results, plots)
    return result, results


def save_plots(results: axl.ResultSet, folder: Path) -> dict[str, str]:
    """Axelrod's own plots of a result set, as PNG files in ``folder``."""
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    plot = axl.Plot(results)
    out = {}
    for kind, draw in (("boxplot", plot.boxplot), ("winplot", plot.winplot),
                       ("payoff", plot.payoff)):  # fmt: skip
        figure = draw()
        path = folder / f"tournament-{kind}.png"
        figure.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(figure)
        out[kind] = path.name
    return out
