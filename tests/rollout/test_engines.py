"""The rollout engines' registry: every kind has an entry; an unknown kind names the known."""

from __future__ import annotations

import pytest

from detente.config import load_config
from detente.rollout.engines import ENGINES, EngineKind, rollout_engine


def test_every_kind_has_an_entry_and_only_the_trainers_kind_plays_on_its_engine():
    assert set(ENGINES) == set(EngineKind)
    assert rollout_engine("hf") is ENGINES[EngineKind.HF]  # the config's value, as it is
    assert [k for k in EngineKind if ENGINES[k].trainer_engine] == [EngineKind.HF]


def test_an_unknown_kind_is_an_error_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown rollout engine 'vlm' \(did you mean vllm\?\); "
                       "known: hf, vllm"):  # fmt: skip
        rollout_engine("vlm")


def test_the_config_holds_a_kind_and_writes_its_value():
    config = load_config("ipd-adalign-tiny", ["runtime.engine=hf"])
    assert config.runtime.engine is EngineKind.HF
    assert config.model_dump(mode="json")["runtime"]["engine"] == "hf"
