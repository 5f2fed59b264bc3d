"""LoRA adapters on one base model: create, copy, save, load, snapshot, delete; which train.

The base model is wrapped with peft when the first adapter is created (and unwrapped when the
last one is deleted). peft's ``set_adapter`` flips ``requires_grad`` on adapters; this class
re-applies its own record after every such call, so an adapter trains exactly when it was
marked trainable, whichever adapter was last active.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from peft.utils import get_peft_model_state_dict, load_peft_weights, set_peft_model_state_dict
from safetensors.torch import save_file
from torch import nn

from detente.lm.types import AdapterSnapshot

WEIGHTS_NAME = "adapter_model.safetensors"


class AdapterSet:
    """The named LoRA adapters of one model."""

    def __init__(self, model: nn.Module) -> None:
        self._base = model
        self._peft: PeftModel | None = None
        self._trainable: set[str] = set()

    @property
    def model(self) -> nn.Module:
        """The peft-wrapped model (the plain base model while no adapter exists)."""
        return self._peft if self._peft is not None else self._base

    def names(self) -> list[str]:
        return [] if self._peft is None else list(self._peft.peft_config)

    def require(self, name: str) -> None:
        if name not in self.names():
            raise KeyError(f"no adapter named {name!r} (have: {self.names()})")

    def add(
        self,
        name: str,
        r: int = 32,
        alpha: int = 64,
        dropout: float = 0.0,
        target_modules: str | list[str] = "all-linear",
        init_seed: int = 0,
        trainable: bool = True,
    ) -> None:
        """A fresh adapter (LoRA B = 0, so it starts equal to the base); init from ``init_seed``."""
        config = LoraConfig(
            r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules
        )
        self._create(name, config, init_seed)
        self.set_trainable(name, trainable)

    def copy(self, src: str, dst: str) -> None:
        """Snapshot ``src``'s weights into a new frozen adapter ``dst``."""
        self.require(src)
        assert self._peft is not None
        weights = {k: v.detach().clone() for k, v in self._state(src).items()}
        self._create(dst, LoraConfig(**self._peft.peft_config[src].to_dict()), init_seed=0)
        self._set_state(dst, weights)

    def save(self, name: str, path: str | os.PathLike[str]) -> None:
        """Write ``name`` in peft's format (adapter_config.json + safetensors) atomically."""
        self.require(name)
        assert self._peft is not None
        write_adapter(self._peft.peft_config[name], self._state(name), path)

    def load(self, name: str, path: str | os.PathLike[str], trainable: bool = False) -> None:
        """Load a saved adapter as ``name``; an existing ``name`` is overwritten in place. A
        missing, truncated or damaged adapter is a ``ValueError`` naming the folder."""
        try:
            config = LoraConfig.from_pretrained(str(path))
            weights = load_peft_weights(str(path), device=str(self._device()))
        except Exception as error:  # e.g. safetensors' own error type for a cut-off file
            reason = " ".join(str(error).split())[:300] or type(error).__name__
            raise ValueError(f"cannot read the adapter in {path} ({reason})") from None
        self._put(name, config, weights, trainable, where=str(path))

    def snapshot(self, name: str) -> AdapterSnapshot:
        """A CPU copy of ``name``'s config and weights (for another engine's ``put``)."""
        self.require(name)
        assert self._peft is not None
        weights = {k: v.detach().to("cpu", copy=True) for k, v in self._state(name).items()}
        return AdapterSnapshot(self._peft.peft_config[name].to_dict(), weights)

    def put(self, name: str, snapshot: AdapterSnapshot, trainable: bool = False) -> None:
        """Create ``name`` from a snapshot, or overwrite it in place (same shape)."""
        config = LoraConfig(**snapshot.config)
        self._put(name, config, snapshot.weights, trainable, where="the snapshot")

    def delete(self, name: str) -> None:
        self.require(name)
        assert self._peft is not None
        self._trainable.discard(name)
        if len(self.names()) == 1:
            self._base = self._peft.unload()
            self._peft = None
            return
        self._peft.delete_adapter(name)
        self._apply_trainable()

    def parameters(self, name: str) -> list[nn.Parameter]:
        """The LoRA parameters of ``name`` (what an optimizer of that adapter holds)."""
        self.require(name)
        params: list[nn.Parameter] = []
        for module in self.model.modules():
            if isinstance(module, LoraLayer):
                for attr in module.adapter_layer_names:
                    container = getattr(module, attr)
                    if name in container:
                        item = container[name]
                        params.extend(
                            [item] if isinstance(item, nn.Parameter) else item.parameters()
                        )
        return params

    def set_trainable(self, name: str, trainable: bool = True) -> None:
        """Whether ``name``'s parameters require gradients."""
        self.require(name)
        if trainable:
            self._trainable.add(name)
        else:
            self._trainable.discard(name)
        self._apply_trainable()

    @contextmanager
    def dropout(self, name: str) -> Iterator[None]:
        """Inside, adapter ``name``'s LoRA dropout is on: its dropout modules alone are put in
        training mode (the base model and the other adapters stay in eval mode)."""
        self.require(name)
        modules = [
            module.lora_dropout[name]
            for module in self.model.modules()
            if isinstance(module, LoraLayer) and name in module.lora_dropout
        ]
        modes = [module.training for module in modules]
        for module in modules:
            module.train()
        try:
            yield
        finally:
            for module, mode in zip(modules, modes, strict=True):
                module.train(mode)

    @contextmanager
    def active(self, name: str | None) -> Iterator[nn.Module]:
        """Forward passes inside use adapter ``name`` alone, or the bare base model for None."""
        if self._peft is None:
            if name is not None:
                self.require(name)
            yield self._base
            return
        if name is None:
            with self._peft.disable_adapter():
                yield self._peft
            return
        self.require(name)
        previous = self._peft.active_adapter
        if previous == name:  # nothing to switch (and switching walks every module twice)
            yield self._peft
            return
        self._peft.set_adapter(name)
        self._apply_trainable()
        try:
            yield self._peft
        finally:
            self._peft.set_adapter(previous)
            self._apply_trainable()

    def _put(
        self,
        name: str,
        config: LoraConfig,
        weights: dict[str, torch.Tensor],
        trainable: bool,
        where: str,
    ) -> None:
        if name in self.names():
            assert self._peft is not None
            old = self._peft.peft_config[name]
            if (old.r, old.lora_alpha, old.target_modules) != (
                config.r,
                config.lora_alpha,
                config.target_modules,
            ):
                raise ValueError(f"adapter in {where} does not match the shape of {name!r}")
        else:
            self._create(name, config, init_seed=0)
        self._set_state(name, weights)
        self.set_trainable(name, trainable)

    def _create(self, name: str, config: LoraConfig, init_seed: int) -> None:
        if name in self.names():
            raise ValueError(f"adapter {name!r} already exists")
        if name == "__base__":
            raise ValueError("'__base__' is reserved for the base model")
        device = self._device()
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=device.type):
            torch.manual_seed(init_seed)
            if self._peft is None:
                self._peft = get_peft_model(self._base, config, adapter_name=name)
                self._peft.train(self._base.training)  # the new wrapper starts in training mode
            else:
                self._peft.add_adapter(name, config)
                # New modules (e.g. LoRA dropout) start in training mode: align them with the
                # model's, or a snapshot made between updates would play with dropout on.
                self._peft.train(self._peft.training)
        self._apply_trainable()

    def _state(self, name: str) -> dict[str, torch.Tensor]:
        return get_peft_model_state_dict(self._peft, adapter_name=name)

    def _set_state(self, name: str, weights: dict[str, torch.Tensor]) -> None:
        result = set_peft_model_state_dict(self._peft, weights, adapter_name=name)
        if result.unexpected_keys:
            raise ValueError(f"unexpected adapter weights: {result.unexpected_keys[:5]}")
        missing = [k for k in result.missing_keys if f".{name}." in k]
        if missing:
            raise ValueError(f"adapter {name!r} weights missing: {missing[:5]}")

    def _apply_trainable(self) -> None:
        for name in self.names():
            for param in self.parameters(name):
                param.requires_grad_(name in self._trainable)

    def _device(self) -> torch.device:
        return next(self._base.parameters()).device


def write_adapter(
    config: LoraConfig, weights: dict[str, torch.Tensor], path: str | os.PathLike[str]
) -> None:
    """Write an adapter in peft's format (adapter_config.json + safetensors), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        config.save_pretrained(str(tmp))
        tensors = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        share_as_umask_allows(tmp)
        _replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def share_as_umask_allows(folder: Path) -> None:
    """Give ``folder`` and everything in it the modes a plain ``mkdir`` / ``open`` would
    (0777 / 0666 less the umask): ``mkdtemp`` makes 0700 folders and some writers 0600 files,
    which would make a shared cache unreadable to the other users it is shared with."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, replacing an old ``dst`` (kept aside until the new one is there)."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
    os.replace(dst, old / dst.name)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)
