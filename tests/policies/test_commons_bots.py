"""Commons bots: pinned outcomes of scripted match-ups (played through the real runner)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detente.games import make_config, make_game
from detente.games.base import Event
from detente.games.commons import RoundEnd, RoundStart
from detente.policies.bots import bot_names, make_bot
from detente.policies.bots.commons import CommonsBot, sustainable_share
from detente.protocol import Style, make_protocol
from detente.rollout.runner import Match, play

GREEDY, SUST, RET = "greedy", "sustainable", "retaliator"


class Mild(CommonsBot):
    """A test-only bot: 15 tons a round, a little over the sustainable 10."""

    bot_name = "mild"

    def decide(self, events: Sequence[Event], player: int, rng: np.random.Generator) -> int:
        return 15


def run(policies: tuple, style: Style = Style.FULL, **options: object):
    game = make_game("commons", make_config("commons", options), 0)
    bots = tuple(make_bot("commons", p) if isinstance(p, str) else p for p in policies)
    (record,) = play([Match(game, bots, "g")], make_protocol("commons", style))
    return record


def catches(record) -> list[list[int]]:
    return [info["harvests"] for info in record.infos]


def test_canonical_names() -> None:
    assert bot_names("commons") == [GREEDY, RET, SUST]


def test_sustainable_share_keeps_a_full_lake_full() -> None:
    """⌊K/(2N)⌋ each leaves at least K/2, which doubles back to K, for any N."""
    shares = {n: sustainable_share(100, n) for n in range(2, 9)}
    assert shares == {2: 25, 3: 16, 4: 12, 5: 10, 6: 8, 7: 7, 8: 6}
    assert all(min(2 * (100 - n * share), 100) == 100 for n, share in shares.items())


def test_sustainable_and_retaliators_keep_the_lake_full_for_the_horizon() -> None:
    for bots in [(SUST,) * 5, (RET,) * 5, (SUST, RET, SUST, RET, RET)]:
        record = run(bots)
        assert record.num_rounds == 10 and catches(record) == [[10] * 5] * 10
        assert all(info["stock"] == 100 for info in record.infos)
        assert [sum(r[p] for r in record.rewards) for p in range(5)] == [100.0] * 5


def test_greedy_collapse_the_lake_in_one_round() -> None:
    """All ask for 100 of 100: 20 each, nothing left, the game ends after round 1."""
    record = run((GREEDY,) * 5)
    assert record.num_rounds == 1 and catches(record) == [[20] * 5]
    assert record.infos[0]["collapsed"] and record.rewards == [(20.0,) * 5]


def test_one_greedy_among_sustainable_collapses_it_too() -> None:
    """Requests (100, 10, 10, 10, 10) of 100: ⌊10000/140⌋ = 71, ⌊1000/140⌋ = 7; 1 ton left."""
    record = run((GREEDY, SUST, SUST, SUST, SUST))
    assert record.num_rounds == 1 and catches(record) == [[71, 7, 7, 7, 7]]


def test_retaliators_punish_mild_overfishing_and_the_lake_collapses() -> None:
    """Round 1: 10 × 4 + 15 = 55 of 100, 45 left → 90; each retaliator saw its co-players take
    45 > 4 · 10. Round 2 they ask for all 90: ⌊90·90/375⌋ = 21 each, ⌊90·15/375⌋ = 3 for the
    mild one, 3 tons left: collapse after 2 rounds."""
    record = run((RET, RET, Mild(), RET, RET))
    assert record.num_rounds == 2
    assert catches(record) == [[10, 10, 15, 10, 10], [21, 21, 3, 21, 21]]
    assert [info["stock"] for info in record.infos] == [100, 90]


def test_retaliator_trigger_is_strictly_above_the_co_players_share() -> None:
    retaliator = make_bot("commons", RET)
    start = RoundStart(1, 100, 3, None)
    for others_took, expected in [((16, 16), 16), ((16, 17), 100)]:  # share ⌊100/6⌋ = 16
        end = RoundEnd(0, 100, 16, (16, *others_took), 16, (16, *others_took), 52, 100, False)
        assert retaliator.decide([RoundStart(0, 100, 3, None), end, start], 0, None) == expected


def test_with_a_chat_bots_announce_their_catch() -> None:
    record = run((SUST, GREEDY), Style.COMPACT, players=2, messages_per_player=1)
    assert catches(record) == [[20, 80]]  # 25 and 100 of 100: ⌊2500/125⌋, ⌊10000/125⌋
    said = [t.action for seat in record.seats for t in seat.turns if t.kind == "message"]
    assert sorted(said) == ["I will catch 100 tons.", "I will catch 25 tons."]
