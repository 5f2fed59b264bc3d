"""Detente's IPD agents as Axelrod players: the cross-check with Axelrod's own strategies, and a
tournament at test size."""

from __future__ import annotations

import itertools

import axelrod as axl
import pytest

from detente.agents import make_agent
from detente.evaluate.axelrod_player import (
    DETERMINISTIC,
    EQUIVALENTS,
    DetentePlayer,
    tournament,
)
from detente.games import make_game
from detente.protocol import make_protocol
from detente.rollout.runner import Match, play

PAIRS = list(itertools.product(sorted(DETERMINISTIC), repeat=2))


def axelrod_scores(a: axl.Player, b: axl.Player, turns: int = 10) -> tuple[int, int]:
    match = axl.Match((a, b), turns=turns)
    match.play()
    return tuple(match.final_score())


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_detente_bots_and_their_axelrod_equivalents_score_alike(a, b):
    """Wrapped detente bots, Axelrod's strategies of the same behaviour, one of each, and
    detente's own runner: identical match scores."""
    wrapped = DetentePlayer(make_agent(a, "ipd")), DetentePlayer(make_agent(b, "ipd"))
    native = EQUIVALENTS[a](), EQUIVALENTS[b]()
    expected = axelrod_scores(*native)
    assert axelrod_scores(*wrapped) == expected
    assert axelrod_scores(wrapped[0], native[1]) == expected
    assert axelrod_scores(native[0], wrapped[1]) == expected
    game = make_game("ipd", None, 0)
    (record,) = play(
        [Match(game, (make_agent(a, "ipd"), make_agent(b, "ipd")), "g")], make_protocol("ipd")
    )
    assert game.total_rewards() == expected
    assert record.num_rounds == 10


def test_the_mirrored_game_follows_the_match_payoffs_and_length():
    game = axl.Game(r=4, s=-1, t=6, p=0)
    match = axl.Match(
        (DetentePlayer(make_agent("bot:tit-for-tat", "ipd")), axl.Alternator()), turns=7, game=game
    )
    match.play()
    native = axl.Match((axl.TitForTat(), axl.Alternator()), turns=7, game=game)
    native.play()
    assert match.final_score() == native.final_score()
    assert match.players[0]._stepped.game.done  # 7 rounds, all applied


def test_a_stochastic_agent_replays_with_the_match_seed():
    def run(seed):
        players = (DetentePlayer(make_agent("bot:random", "ipd")), axl.TitForTat())
        return axl.Match(players, turns=20, seed=seed).play()

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_tournament_ranks_the_agents_among_the_classic_strategies(tmp_path):
    agents = [make_agent("bot:tit-for-tat", "ipd"), make_agent("bot:always-defect", "ipd")]
    result, results = tournament(agents, "classic", turns=10, repetitions=1, plots=tmp_path)
    assert len(result.ranking) == 2 + len(axl.axelrod_first_strategies)
    assert [a["name"] for a in result.agents] == sorted(
        ["bot:tit-for-tat", "bot:always-defect"], key=lambda n: results.ranked_names.index(n)
    )
    by_name = {a["name"]: a for a in result.agents}
    assert by_name["bot:always-defect"]["cooperation_rating"] == 0.0
    assert by_name["bot:tit-for-tat"]["initial_cooperation"] == 1.0
    # Against every deterministic strategy, Axelrod's own Tit For Tat in the same tournament
    # scores exactly as detente's.
    index = {str(p): i for i, p in enumerate(results.players)}
    ours, theirs = index["bot:tit-for-tat"], index["Tit For Tat"]
    fixed = {str(p) for p in (c() for c in axl.axelrod_first_strategies)
             if not axl.Classifiers["stochastic"](p)}
    deterministic = [index[n] for n in fixed if index[n] not in (ours, theirs)]
    assert len(deterministic) >= 5
    for j in deterministic:
        assert results.payoff_matrix[ours][j] == results.payoff_matrix[theirs][j]
    assert sorted(result.plots) == ["boxplot", "payoff", "winplot"]
    assert all((tmp_path / name).is_file() for name in result.plots.values())
    with pytest.raises(ValueError, match="unknown Axelrod strategy set"):
        tournament(agents, "modern")


def test_an_api_agent_and_a_trained_run_play_axelrod_matches(trained_ipd_run):
    """An ``api:`` agent (a detente bot served over the OpenAI API) scores as Axelrod's own
    strategy; a ``run:`` agent (the tiny-test model) plays every turn of a seeded match, the
    same way twice."""
    from detente.policies.api import ApiConfig, ApiPolicy
    from detente.policies.bots import make_bot
    from detente.serve import create_app, serve_in_thread

    with serve_in_thread(create_app(make_bot("ipd", "wsls"), "ipd", make_protocol("ipd"))) as url:
        api = ApiPolicy(ApiConfig(model="bot:wsls", base_url=url, timeout=5.0))
        with api:
            for opponent in (axl.Alternator, axl.TitForTat, axl.Defector):
                assert axelrod_scores(DetentePlayer(api), opponent()) == axelrod_scores(
                    axl.WinStayLoseShift(), opponent())

    run = make_agent(f"run:{trained_ipd_run}", "ipd")

    def seeded(seed):
        match = axl.Match((DetentePlayer(run, "compact", True), axl.Random()), turns=6, seed=seed)
        return match.play()

    first = seeded(5)
    assert len(first) == 6 and first == seeded(5)
