"""Config: presets compose, overrides apply, every mistake names its key."""

from __future__ import annotations

import pytest

from detente.config import ConfigError, dump_config, load_config, preset, preset_names, validate


def test_every_preset_validates():
    names = preset_names()
    assert {"ipd-adalign", "ipd-adalign-tiny", "trust-split-naive-smollm2", "split-sum"} <= set(
        names
    )
    for name in names:
        load_config(name)


def test_paper_values_in_gpu_presets():
    ipd = load_config("ipd-adalign")
    assert ipd.model.name == "Qwen/Qwen2.5-7B-Instruct"
    assert (ipd.train.games_per_iteration, ipd.train.group_size, ipd.train.gamma) == (128, 1, 0.9)
    assert (ipd.train.beta, ipd.train.gamma_a, ipd.train.entropy_coef) == (0.5, 0.9, 0.01)
    assert ipd.pool.enabled and ipd.pool.every == 10
    ts = load_config("trust-split-adalign")
    assert (ts.train.beta, ts.train.gamma_a, ts.train.gamma, ts.train.kl_coef) == (
        2.0,
        0.96,
        0.96,
        0.001,
    )
    assert ts.train.entropy_coef == 0.0 and ts.train.group_size == 8
    naive = load_config("split-naive")
    assert naive.train.method == "naive" and not naive.pool.enabled
    assert (naive.train.lr, naive.model.lora.r, naive.model.lora.alpha) == (3e-6, 32, 64)
    assert naive.model.dtype == "bfloat16"  # on CUDA, sampled and trained in bf16 alike
    assert load_config("split-naive-smollm2").model.dtype == "float32"


@pytest.mark.parametrize(
    ("game", "free_retries"), [("ipd", 0), ("trust-split", 1), ("split", 2), ("dond", 1)]
)
def test_gpu_presets_have_the_authors_reply_budgets_and_retries(game, free_retries):
    """400 tokens a reply; the authors' free samples before guided decoding (1 for IPD and
    Trust-and-Split, 3 for split) as free_retries + the constrained sample, with one more
    free re-sample where messages (which cannot be constrained) are played."""
    for method in ("naive", "sum", "adalign"):
        config = load_config(f"{game}-{method}")
        assert (config.sampling.max_message_tokens, config.sampling.max_move_tokens) == (400, 400)
        assert (config.invalid.free_retries, config.invalid.constrained_retry) == (
            free_retries,
            True,
        )
    tiny = load_config(f"{game}-naive-tiny")  # CPU scales keep their own budgets
    assert tiny.sampling.max_message_tokens == 32


def test_leading_gamma_defaults_to_the_authors_choice_and_can_be_set():
    assert load_config("ipd-adalign-tiny").train.leading_gamma is None
    config = load_config("ipd-adalign-tiny", ["train.leading_gamma=true"])
    assert config.train.leading_gamma is True


def test_reward_weights_are_two_finite_numbers_for_a_naive_learner():
    assert load_config("ipd-naive-tiny").train.reward_weights == (1.0, 0.0)
    config = load_config("ipd-naive-tiny", ["train.reward_weights=[1, -1]"])
    assert config.train.reward_weights == (1.0, -1.0)
    for bad, names in [
        ("[1]", "train.reward_weights.1"),
        ("[1, 0, 2]", "train.reward_weights"),
        ("[1, .nan]", "train.reward_weights.1"),
        ("[0, 0]", "reward_weights=[0, 0]"),
        ("[1, a]", "train.reward_weights.1"),
    ]:
        with pytest.raises(ConfigError, match=names.replace(".", r"\.").replace("[", r"\[")):
            load_config("ipd-naive-tiny", [f"train.reward_weights={bad}"])
    with pytest.raises(ConfigError, match="method=naive only"):
        load_config("ipd-adalign-tiny", ["train.reward_weights=[0, -1]"])


def test_overrides_and_round_trip(tmp_path):
    config = load_config("ipd-naive-tiny", ["train.lr=0.01", "game.options.rounds=5", "seed=3"])
    assert (config.train.lr, config.game.options["rounds"], config.seed) == (0.01, 5, 3)
    path = tmp_path / "run.yaml"
    path.write_text(dump_config(config))
    assert load_config(str(path)) == config


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (["train.lrr=1"], "train.lrr"),
        (["train.method=selfish"], "train.method"),
        (["game.options.rouns=3"], "options.rouns"),
        (["game.name=chess"], "chess"),
        (["pool.p_past=2"], "pool.p_past"),
        (["train.leading_gamma=sometimes"], "train.leading_gamma"),
        (["train.games_per_iteration=10", "train.group_size=3"], "group_size"),
        (["nonsense"], "key.sub=value"),
    ],
)
def test_errors_name_the_key(overrides, names):
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        load_config("trust-split-naive-tiny", overrides)


def test_unknown_preset_and_missing_file():
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("ipd-selfish")
    with pytest.raises(ConfigError, match="not found"):
        load_config("nope.yaml")
    with pytest.raises(ConfigError, match="bogus: unknown key"):
        validate({"bogus": 1})


def test_runtime_section_defaults_in_process_and_rejects_unknown_keys():
    config = load_config("ipd-adalign-tiny")
    assert config.runtime.workers == 0 and config.runtime.engine == "hf"
    config = load_config("ipd-adalign", ["runtime.workers=4", "runtime.vllm.sleep=false"])
    assert config.runtime.workers == 4 and not config.runtime.vllm.sleep
    with pytest.raises(ConfigError, match=r"runtime\.worker"):
        load_config("ipd-adalign-tiny", ["runtime.worker=2"])
    with pytest.raises(ConfigError, match=r"runtime\.engine"):
        load_config("ipd-adalign-tiny", ["runtime.engine=sglang"])


def test_scale_fragments_have_per_game_entries():
    # tiny's trust-split games are as long as its warm start's (4 rounds); other games keep theirs
    assert load_config("trust-split-adalign-tiny").game.options == {"rounds": 4}
    assert load_config("ipd-adalign-tiny").game.options == {}
    assert load_config("trust-split-adalign").game.options == {}
    # method entries still apply under a scale that sets the same section
    assert load_config("ipd-adalign").train.entropy_coef == 0.01
    assert load_config("ipd-adalign-tiny").train.entropy_coef == 0.0
