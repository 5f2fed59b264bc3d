"""Trust-and-Split bots: scripted matchups and the SPEC §1.2 reference payoffs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from detente.games.base import ALICE, BOB, Event, Kind
from detente.games.trust_split import Hand, TrustSplit, TrustSplitConfig, beater, beats
from detente.policies.base import Request
from detente.policies.bots import bot_names, make_bot
from detente.policies.bots.base import Bot
from detente.protocol.trust_split import TrustSplitProtocol, claimed_hand

GAME = TrustSplit.name


class Silent(Bot):
    """Names no hand, keeps 3 coins."""

    game = GAME
    bot_name = "silent"

    def message(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> str:
        return "Hello."

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        return 3


def play(
    alice: Bot, bob: Bot, seed: int, **config: object
) -> tuple[TrustSplit, list[list[tuple[int, str]]]]:
    """Drive one game with two bots through the text protocol; also return each round's chat."""
    game = TrustSplit(TrustSplitConfig(**config), seed)
    protocol = TrustSplitProtocol(high=game.config.coins)
    seats = (alice, bob)
    chats: list[list[tuple[int, str]]] = []
    while not game.done:
        phase = game.phase
        actions = {}
        for p in phase.players:
            request = Request(
                session_id=f"{seed}-{p}",
                game=GAME,
                player=p,
                round=game.round,
                kind=phase.kind,
                messages=(),
                events=tuple(game.events(p)),
                protocol=protocol,
                seed=seed,
            )
            reply = seats[p].act([request])[0]
            actions[p] = protocol.parse(phase.kind, reply.text)
        if phase.kind is Kind.MESSAGE:
            if len(chats) <= game.round:
                chats.append([])
            chats[game.round].extend(actions.items())
        game.act(actions)
    return game, chats


def mean_rewards(alice: str, bob: str, seeds: range) -> np.ndarray:
    rewards = [play(make_bot(GAME, alice), make_bot(GAME, bob), seed)[0].rewards for seed in seeds]
    return np.asarray(rewards).reshape(-1, 2).mean(axis=0)


def test_registered_bots() -> None:
    assert bot_names(GAME) == ["forgiving", "greedy", "honest", "liar", "sucker", "tit-for-tat"]


def test_forgiving_retaliates_after_being_cheated_with_its_stated_probability() -> None:
    """Honest everywhere, but right after the other kept coins with the lower hand it keeps
    every coin with probability 0.4 (when honesty would concede)."""
    retaliated, chances = 0, 0
    forgiving = make_bot(GAME, "forgiving")
    for seed in range(200):
        game, _ = play(forgiving, make_bot(GAME, "greedy"), seed, rounds=6)
        for t in range(1, game.num_rounds):
            before, now = game.infos[t - 1], game.infos[t]
            cheated = before["upper"] == 0  # greedy kept coins with the lower hand
            if now["upper"] == 1:  # honesty concedes: 0 coins
                if cheated:
                    chances += 1
                    retaliated += now["claims"][0] == 10
                else:
                    assert now["claims"][0] == 0
            else:
                assert now["claims"][0] == 10
    assert abs(retaliated / chances - 0.4) < 3 * (0.24 / chances) ** 0.5


SPEC_REFERENCE = [
    ("honest", "honest", (50.0, 50.0)),
    ("greedy", "greedy", (27.5, 27.5)),
    ("honest", "greedy", (25.0, 52.5)),
    ("greedy", "honest", (52.5, 25.0)),
]
REFERENCE = [
    *SPEC_REFERENCE,
    ("sucker", "greedy", (0.0, 55.0)),
    ("tit-for-tat", "honest", (50.0, 50.0)),
]


@pytest.mark.slow
@pytest.mark.parametrize(("alice", "bob", "expected"), SPEC_REFERENCE)
def test_reference_payoffs(alice: str, bob: str, expected: tuple[float, float]) -> None:
    """SPEC §1.2 sanity checks, per round and per seat, over 1500 games (15000 rounds)."""
    assert mean_rewards(alice, bob, range(1500)) == pytest.approx(expected, abs=0.5)


@pytest.mark.parametrize(("alice", "bob", "expected"), REFERENCE)
def test_reference_payoffs_exact_over_both_hand_assignments(
    alice: str, bob: str, expected: tuple[float, float]
) -> None:
    """These bots' rewards depend only on who holds the upper hand, so pairing each game with
    the same game where the upper hand changes seat gives the expected values exactly."""
    totals = np.zeros(2)
    for seed in range(50):
        forward, _ = play(make_bot(GAME, alice), make_bot(GAME, bob), seed)
        mirror, _ = play(make_bot(GAME, bob), make_bot(GAME, alice), seed)
        totals += np.sum(forward.rewards, axis=0) + np.sum(mirror.rewards, axis=0)[::-1]
    assert totals / 1000 == pytest.approx(expected, abs=1e-9)


def test_truthful_bots_report_their_hand() -> None:
    for name in ("honest", "greedy", "tit-for-tat", "sucker"):
        game, chats = play(make_bot(GAME, name), make_bot(GAME, "liar"), 3)
        for r, chat in enumerate(chats):
            hand = Hand(game.infos[r]["hands"][ALICE])
            assert [claimed_hand(text) for sender, text in chat if sender == ALICE] == [hand]


def test_honest_winner_keeps_all() -> None:
    game, _ = play(make_bot(GAME, "honest"), make_bot(GAME, "honest"), 8)
    for info in game.infos:
        assert info["claims"][info["upper"]] == 10 and info["claims"][1 - info["upper"]] == 0
        assert sum(info["rewards"]) == 100.0


def test_honest_keeps_half_without_a_stated_hand() -> None:
    game, _ = play(make_bot(GAME, "honest"), Silent(), 2)
    assert [info["claims"] for info in game.infos] == [[5, 3]] * 10


def test_liar_claims_the_winning_hand_as_responder() -> None:
    for seed in range(30):
        game, chats = play(make_bot(GAME, "honest"), make_bot(GAME, "liar"), seed)
        for info, chat in zip(game.infos, chats, strict=True):
            honest_hand = Hand(info["hands"][ALICE])
            liar_hand = Hand(info["hands"][BOB])
            liar_claim = claimed_hand(chat[1][1] if info["opener"] == ALICE else chat[0][1])
            assert info["claims"][BOB] == 10
            if info["opener"] == ALICE:  # the liar answers with the hand beating the honest one
                assert liar_claim is beater(honest_hand)
                assert info["claims"][ALICE] == 0
            else:  # as opener it names its own hand
                assert liar_claim is liar_hand
                assert info["claims"][ALICE] == (10 if beats(honest_hand, liar_hand) else 0)


def test_liar_exploits_honest() -> None:
    """Liar responding: honest believes it lost and keeps 0 (liar 100 or 10). Liar opening: it
    tells the truth, so the round is honest vs greedy (5/50 or 0/100)."""
    rewards = []
    for seed in range(100):
        game, _ = play(make_bot(GAME, "honest"), make_bot(GAME, "liar"), seed)
        for info in game.infos:
            liar_upper = info["upper"] == BOB
            if info["opener"] == ALICE:
                expected = [0.0, 100.0 if liar_upper else 10.0]
            else:
                expected = [0.0, 100.0] if liar_upper else [50.0, 5.0]
            assert info["rewards"] == expected
            rewards.append(expected)
    # per round: honest (0 + 25) / 2 = 12.5, liar (55 + 52.5) / 2 = 53.75
    assert np.mean(rewards, axis=0) == pytest.approx([12.5, 53.75], abs=2.5)


def test_tit_for_tat_punishes_one_round_after_a_low_hand_grab() -> None:
    game, _ = play(make_bot(GAME, "tit-for-tat"), make_bot(GAME, "greedy"), 5, rounds=30)
    infos = game.infos
    assert infos[0]["claims"][ALICE] in (0, 10)  # round 0: honest
    for previous, info in zip(infos, infos[1:], strict=False):
        greedy_grabbed_low = previous["upper"] == ALICE  # greedy always keeps 10
        tft_wins = info["upper"] == ALICE
        expected = 10 if greedy_grabbed_low or tft_wins else 0
        assert info["claims"][ALICE] == expected
    # both branches occur in this game
    assert any(
        p["upper"] == ALICE and i["upper"] == BOB for p, i in zip(infos, infos[1:], strict=False)
    )
    assert any(
        p["upper"] == BOB and i["upper"] == BOB for p, i in zip(infos, infos[1:], strict=False)
    )


def test_tit_for_tat_forgives_fair_play() -> None:
    """Against a sucker (never keeps coins) tit-for-tat stays honest: the winner keeps all."""
    game, _ = play(make_bot(GAME, "tit-for-tat"), make_bot(GAME, "sucker"), 9)
    for info in game.infos:
        assert info["claims"] == [10 if info["upper"] == ALICE else 0, 0]


def test_two_messages_per_player() -> None:
    game, chats = play(make_bot(GAME, "honest"), make_bot(GAME, "liar"), 4, messages_per_player=2)
    for info, chat in zip(game.infos, chats, strict=True):
        opener = info["opener"]
        assert [sender for sender, _ in chat] == [opener, 1 - opener] * 2
        liar_claims = {claimed_hand(text) for sender, text in chat if sender == BOB}
        assert len(liar_claims) == 1  # consistent across its messages
        assert info["claims"][ALICE] in (0, 10)


def test_bots_are_deterministic() -> None:
    first = play(make_bot(GAME, "tit-for-tat"), make_bot(GAME, "liar"), 12)
    second = play(make_bot(GAME, "tit-for-tat"), make_bot(GAME, "liar"), 12)
    assert first[0].infos == second[0].infos and first[1] == second[1]


def test_bots_follow_the_configured_coins() -> None:
    game, _ = play(make_bot(GAME, "honest"), make_bot(GAME, "greedy"), 1, coins=6)
    for info in game.infos:
        assert info["claims"][BOB] == 6
        assert info["claims"][ALICE] == (6 if info["upper"] == ALICE else 0)
