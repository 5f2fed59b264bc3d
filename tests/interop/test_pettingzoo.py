"""Every registered game as a PettingZoo environment passes PettingZoo's own test kit, in both
modes, and plays exactly as detente plays it.

The ``pettingzoo`` extra is installed by ``make test`` (the Makefile's test set-up): these tests
run in CI, they are not skipped when it is missing.
"""

from __future__ import annotations

import importlib
import re
import sys
import tomllib
import warnings
from importlib.metadata import requires, version
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test
from pettingzoo.utils.conversions import aec_to_parallel_wrapper, turn_based_aec_to_parallel_wrapper

from detente.games import game_names, game_type, make_config, make_game
from detente.games.chat import ChatConfig
from detente.interop.pettingzoo import make_env, make_parallel_env
from detente.policies.bots import bot_names, make_bot
from detente.protocol import make_protocol
from detente.rollout.runner import Match, play

ROOT = Path(__file__).resolve().parents[2]
MODES = ("text", "structured")
CYCLES = 12  # enough for the 3 rounds of a game and a message each (AEC: cycles x agents steps)
OPTIONS = {"rounds": 3}
CHAT = [g for g in game_names() if issubclass(game_type(g).config_type, ChatConfig)]


@pytest.fixture(autouse=True)
def _quiet():
    """PettingZoo's advice (Box or Discrete spaces, NumPy observations, finite bounds) does not
    fit text observations and unbounded event fields; the checks that fail raise anyway."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("game", game_names())
def test_pettingzoos_api_and_seed_tests_pass(game, mode, capsys):
    api_test(make_env(game, mode, **OPTIONS), num_cycles=CYCLES)
    seed_test(lambda: make_env(game, mode, **OPTIONS), num_cycles=CYCLES)
    parallel_api_test(make_parallel_env(game, mode, **OPTIONS), num_cycles=CYCLES)
    parallel_seed_test(lambda: make_parallel_env(game, mode, **OPTIONS), num_cycles=CYCLES)
    assert capsys.readouterr().out.count("Passed") == 2  # the kit's own last words


@pytest.mark.parametrize("game", CHAT)
def test_chat_games_pass_with_their_chat_in_text_mode(game):
    options = {**OPTIONS, "messages_per_player": 1}
    api_test(make_env(game, "text", **options), num_cycles=CYCLES)
    seed_test(lambda: make_env(game, "text", **options), num_cycles=CYCLES)
    parallel = make_parallel_env(game, "text", **options)
    assert isinstance(parallel, turn_based_aec_to_parallel_wrapper)
    parallel_api_test(parallel, num_cycles=CYCLES)
    parallel_seed_test(lambda: make_parallel_env(game, "text", **options), num_cycles=CYCLES)


@pytest.mark.parametrize("game", game_names())
def test_the_parallel_form_is_one_step_a_round_without_chat(game):
    env = make_parallel_env(game, "structured", **OPTIONS)
    assert isinstance(env, aec_to_parallel_wrapper)
    observations, _ = env.reset(seed=3)
    assert set(observations) == set(env.possible_agents)
    steps = 0
    while env.agents:
        _, _, _, _, infos = env.step(dict.fromkeys(env.agents, 0))  # the first legal reply
        assert not any(info["invalid"] for info in infos.values())
        steps += 1
    assert steps == env.unwrapped.game.num_rounds == 3


@pytest.mark.parametrize("game", game_names())
def test_text_mode_shows_and_reads_what_detentes_rollout_does(game):
    """Bots play a game with detente's runner; their replies, stepped into the environment of
    the same seed, meet the same prompts, the same rules and the same rewards."""
    config = make_config(game, {**OPTIONS, "messages_per_player": 1} if game in CHAT else OPTIONS)
    seed, names = 7, bot_names(game)
    protocol = make_protocol(game, "full", config)
    match = make_game(game, config, seed)
    bots = tuple(make_bot(game, names[s % len(names)]) for s in range(match.num_players))
    (record,) = play([Match(match, bots, "g")], protocol, seed=seed)
    options = {k: getattr(config, k) for k in type(config).model_fields}
    env = make_env(game, "text", **options)
    env.reset(seed=seed)
    turns = {f"player_{seat.player}": iter(seat.turns) for seat in record.seats}
    totals = dict.fromkeys(env.possible_agents, 0.0)
    for seat in record.seats:
        assert env.unwrapped.rules(f"player_{seat.player}") == seat.system
    for agent in env.agent_iter():
        observation, reward, termination, truncation, info = env.last()
        totals[agent] += reward
        if termination or truncation:
            env.step(None)
            continue
        turn = next(turns[agent])
        assert observation["prompt"] == turn.prompt
        assert observation["kind"] == {"message": 1, "move": 2}[turn.kind.value]
        env.step(turn.reply)
    assert all(next(t, None) is None for t in turns.values())
    expected = [sum(r[p] for r in record.rewards) for p in range(len(record.seats))]
    assert list(totals.values()) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("mode", "cooperate", "defect"), [("structured", 0, 1), ("text", "<A>", "<B>")]
)
def test_a_scripted_ipd_pays_the_detente_payoffs(mode, cooperate, defect):
    env = make_parallel_env("ipd", mode, rounds=2)
    env.reset(seed=0)
    _, rewards, terminations, _, infos = env.step({"player_0": cooperate, "player_1": defect})
    assert rewards == {"player_0": 0.0, "player_1": 5.0}
    assert not any(terminations.values()) and not any(i["invalid"] for i in infos.values())
    _, rewards, terminations, _, _ = env.step({"player_0": cooperate, "player_1": cooperate})
    assert rewards == {"player_0": 3.0, "player_1": 3.0}
    assert all(terminations.values()) and env.agents == []


def test_an_invalid_text_reply_plays_the_default_move_and_is_reported():
    env = make_parallel_env("ipd", "text", rounds=3)
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({"player_0": "I cooperate", "player_1": "<A>"})
    assert rewards == {"player_0": 5.0, "player_1": 0.0}  # the declared default: defect
    assert infos["player_0"]["invalid"] and infos["player_0"]["invalid_count"] == 1
    assert "expected exactly <A> or <B>" in infos["player_0"]["error"]
    assert not infos["player_1"]["invalid"] and "error" not in infos["player_1"]
    _, _, _, _, infos = env.step({"player_0": 3, "player_1": "<A>"})  # not even a string
    assert infos["player_0"]["invalid"] and infos["player_0"]["invalid_count"] == 2
    _, _, _, _, infos = env.step({"player_0": "<A>", "player_1": "<A>"})
    assert not infos["player_0"]["invalid"] and infos["player_0"]["invalid_count"] == 2


def test_an_invalid_message_is_sent_empty():
    env = make_env("trust-split", "text", rounds=1)
    env.reset(seed=0)
    speaker = env.agent_selection
    env.step("no markers")
    assert env.infos[speaker]["invalid"] and env.infos[speaker]["invalid_count"] == 1
    listener = env.agent_selection
    assert listener != speaker
    assert env.observe(listener)["prompt"].splitlines()[-2].endswith("says: ")


def test_a_masked_structured_action_plays_the_default_move():
    env = make_parallel_env("commons", "structured", players=2, stock=40, capacity=100, rounds=3)
    _, infos = env.reset(seed=0)
    mask = infos["player_0"]["action_mask"]
    assert mask.shape == (101,) and mask[:41].all() and not mask[41:].any()  # 0..stock
    _, rewards, _, _, infos = env.step({"player_0": 60, "player_1": 10})
    assert infos["player_0"]["invalid"] and rewards == {"player_0": 0.0, "player_1": 10.0}
    assert infos["player_0"]["action_mask"][:61].all()  # 30 tons left, doubled
    assert not infos["player_0"]["action_mask"][61:].any()


def test_a_commons_collapse_ends_the_episode_early():
    env = make_parallel_env("commons", "structured", players=3, rounds=5)
    observations, _ = env.reset(seed=0)
    assert observations["player_0"][1] == 100  # the stock, after the round index
    everything = {a: 100 for a in env.agents}  # each is granted a third: 1 ton left
    observations, rewards, terminations, truncations, _ = env.step(everything)
    assert rewards == dict.fromkeys(rewards, 33.0)
    assert all(terminations.values()) and not any(truncations.values())
    assert env.agents == [] and env.unwrapped.game.num_rounds == 1
    aec = make_env("commons", "structured", players=3, rounds=5)
    aec.reset(seed=0)
    for agent in aec.agents[:]:
        assert aec.agent_selection == agent
        aec.step(100)
    assert all(aec.terminations.values()) and len(aec.unwrapped.game.rewards) == 1


def test_public_goods_with_four_agents_and_a_free_rider():
    env = make_parallel_env("public-goods", "structured", players=4, rounds=2)
    observations, infos = env.reset(seed=0)
    assert env.possible_agents == ["player_0", "player_1", "player_2", "player_3"]
    assert all(env.action_space(a).n == 11 for a in env.agents)  # give 0..10 coins
    _, rewards, _, _, _ = env.step(dict.fromkeys(env.agents, 10))
    assert rewards == dict.fromkeys(env.agents, 16.0)  # 1.6 x 40 / 4
    observations, rewards, _, _, _ = env.step({**dict.fromkeys(env.agents, 10), "player_0": 0})
    assert rewards == {"player_0": 22.0, "player_1": 12.0, "player_2": 12.0, "player_3": 12.0}
    assert env.agents == []
    start = [1, 10, 0, 0]  # round, endowment, no opener (no chat)
    end = [1, 10, 0, 10, 10, 10, 12, 22, 12, 12, 12, 12]  # round, own, all, own reward, all, share
    assert observations["player_1"].tolist() == [*start, 1, *end]


def test_structured_mode_plays_without_chat_and_refuses_one():
    assert not make_env("dond", "structured").unwrapped.config.messages_per_player
    with pytest.raises(ValueError, match="messages_per_player=0"):
        make_env("dond", "structured", messages_per_player=1)


def test_unknown_options_and_modes_are_one_line_errors():
    with pytest.raises(ValueError, match="roundz"):
        make_env("ipd", "text", roundz=3)
    with pytest.raises(ValueError, match="not a valid Mode"):
        make_env("ipd", "pixels")


def test_observations_start_over_on_reset_and_follow_the_seed():
    env = make_env("split", "structured", rounds=3)
    env.reset(seed=5)
    first = env.observe("player_0")
    env.step(0)
    env.reset(seed=5)
    assert np.array_equal(env.observe("player_0"), first)
    env.reset(seed=6)
    values = [make_game("split", None, s).values for s in (5, 6)]
    assert values[0] != values[1] and not np.array_equal(env.observe("player_0"), first)


def test_render_gives_a_line_of_text():
    env = make_env("ipd", "text", render_mode="ansi", rounds=2)
    env.reset(seed=1)
    env.step("<A>")
    env.step("<B>")
    assert env.render() == "ipd (seed 1), round 2, move; points: player_0 0, player_1 5"


def test_a_missing_extra_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pettingzoo", None)
    monkeypatch.delitem(sys.modules, "detente.interop.pettingzoo")
    with pytest.raises(ImportError, match=re.escape("pip install 'detente[pettingzoo]'")):
        importlib.import_module("detente.interop.pettingzoo")


def test_the_extra_is_declared_locked_and_installed_for_the_tests():
    """Declared as a range, locked in the CPU lock (with gymnasium's own Farama-Notifications),
    and installed by the Makefile's test set-up; neither package needs torch."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = [Requirement(r) for r in project["optional-dependencies"]["pettingzoo"]]
    assert {r.name for r in extra} == {"pettingzoo", "gymnasium"}
    lock = dict(
        line.split("==")
        for line in (ROOT / "constraints" / "cpu.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for requirement in extra:
        assert requirement.specifier.contains(lock[requirement.name]), requirement
        assert version(requirement.name) == lock[requirement.name]  # as installed here
        needs = [Requirement(r) for r in requires(requirement.name) or []]
        assert "torch" not in {r.name for r in needs if r.marker is None}  # only their extras
    assert "Farama-Notifications" in lock
    assert "'.[dev,league,tracking,pettingzoo]'" in (ROOT / "Makefile").read_text()


def test_the_readme_example_runs():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Games as PettingZoo environments", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert len(code.strip().splitlines()) <= 10
    exec(compile(code, "README.md", "exec"), {})
