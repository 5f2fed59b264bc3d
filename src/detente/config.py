"""One typed schema for a run, YAML presets, and ``a.b=value`` overrides.

A preset is named ``GAME-METHOD[-SCALE]`` (e.g. ``ipd-adalign``, ``ipd-adalign-tiny``) and is the
deep merge, in this order (later wins), of shipped fragments: ``presets/games/GAME.yaml`` (the
game and its paper hyperparameters), ``presets/methods/METHOD.yaml`` (credit, opponent pool; may
hold per-game entries under ``for_games``) and ``presets/scales/SCALE.yaml`` (model, batch sizes
and learning rate; ``gpu``, the paper's Qwen2.5-7B setting, when no scale is named). Unknown keys anywhere are errors that
name the key.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detente.games import GameConfig, game_entry, game_names, game_type
from detente.learn.credit import CreditOptions
from detente.learn.variants import LossType
from detente.protocol.base import Style
from detente.rollout.engines import EngineKind
from detente.rollout.runner import InvalidReplyConfig
from detente.suggest import did_you_mean


class ConfigError(ValueError):
    """An invalid configuration; the message names the offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LoraConfig(_Strict):
    r: int = Field(32, ge=1, description="LoRA rank (paper: 32).")
    alpha: float = Field(64.0, gt=0, description="LoRA alpha (paper: 64).")
    dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="LoRA dropout on the live adapter's path in the training forward (seeded "
        "per iteration, so runs and resumes replay it); sampling and scoring never drop.",
    )
    target_modules: str | list[str] = Field("all-linear", description="Adapted layers.")


class ModelSection(_Strict):
    name: str = Field("tiny", description="tiny | smollm2-135m | a local Hugging Face path.")
    lora: LoraConfig = LoraConfig()
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="float32 | bfloat16. bfloat16 on CUDA loads the base in bf16, so sampling "
        "and training compute alike (on-policy ratio 1); on the CPU the base stays float32 "
        "and only the training forward autocasts to bf16 (lm.models.precision).",
    )


class SamplingSection(_Strict):
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (paper: 1.0).")
    top_p: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Nucleus sampling mass; the trainer scores replies under the same nucleus.",
    )
    max_message_tokens: int = Field(96, ge=1, description="Token budget of a chat message.")
    max_move_tokens: int = Field(16, ge=1, description="Token budget of a move/proposal.")


class GameSection(_Strict):
    name: str = Field("ipd", description="A registered game (`detente -h` lists them).")
    style: Style = Field(Style.FULL, description="Prompt style: full (LLMs) or compact (tiny).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The game's own options (rounds, payoffs, ...)."
    )

    @model_validator(mode="after")
    def _known_game_and_options(self) -> GameSection:
        rules = game_type(self.name)  # an unknown game: a one-line error with the known ones
        try:
            rules.config_type(**self.options)
        except ValidationError as error:
            first = error.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"options.{key}: {first['msg']}") from None
        return self

    def game_config(self) -> GameConfig:
        return game_type(self.name).config_type(**self.options)


class TrainSection(CreditOptions):
    """The training loop's options; the credit's (method, γ, β, γ_a, reward mixing, ...) are
    declared once, in :class:`detente.learn.credit.CreditOptions`."""

    iterations: int = Field(
        100, ge=1, description="Iterations: play, credit, update (one optimizer step each with "
        "loss=reinforce, ppo_epochs with loss=ppo)."
    )
    games_per_iteration: int = Field(64, ge=1, description="Games played per iteration.")
    group_size: int = Field(8, ge=1, description="Games sharing an environment seed.")
    lr: float = Field(3e-6, gt=0, description="Adam learning rate (paper: 3e-6).")
    kl_coef: float = Field(0.0, ge=0, description="κ: weight of KL_k3(π_θ ‖ π_base).")
    entropy_coef: float = Field(0.0, ge=0, description="η: entropy bonus.")
    ratio_cap: float = Field(
        2.0, ge=1, description="Cap of the truncated importance ratio (below 1 it would shrink "
        "every on-policy token's weight)."
    )
    loss: LossType = Field(
        LossType.REINFORCE,
        description="reinforce | ppo (default reinforce). reinforce: −C · ρ̄ · log π_θ per action "
        "token, one optimizer step per iteration (SPEC §2). ppo: the clipped surrogate "
        "−ρ̄ · min(r C, clip(r, 1−ε, 1+ε) C), r = π_θ/π_old, over ppo_epochs optimizer steps "
        "on the iteration's data (Schulman et al. 2017, PPO; with method=adalign, Proximal "
        "Advantage Alignment of Duque et al., ICLR 2025). Both add the kl_coef and "
        "entropy_coef terms; learn/loss.py has the formulas.",
    )
    ppo_epochs: int = Field(
        4,
        ge=1,
        description="loss=ppo only (default 4; CleanRL's update_epochs): passes over the "
        "iteration's data, one optimizer step each (the same mini-batches, gradient "
        "accumulation and order every pass); credits and π_old are computed once per iteration. "
        "1 gives REINFORCE's gradient (r = 1; not so with LoRA dropout). With loss=reinforce "
        "only the default is accepted.",
    )
    clip_epsilon: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="loss=ppo only (default 0.2, Schulman et al. 2017): ε of the clip of "
        "r = π_θ/π_old to [1 − ε, 1 + ε]. With loss=reinforce only the default is accepted.",
    )
    grad_clip: float = Field(1.0, gt=0, description="Gradient-norm clip.")
    minibatch_sequences: int = Field(16, ge=1, description="Sequences per accumulation step.")
    opponent: str | None = Field(
        None,
        description="A frozen agent spec (bot:NAME, lm:MODEL, run:DIR) in the other seat of every "
        "game; only the live seat learns (the exploitability test). None = self-play.",
    )

    @model_validator(mode="after")
    def _ppo_options_with_ppo(self) -> TrainSection:
        if self.loss is LossType.PPO:
            return self
        fields = type(self).model_fields
        for key in ("ppo_epochs", "clip_epsilon"):
            if getattr(self, key) != fields[key].default:
                raise ValueError(
                    f"{key}={getattr(self, key)} has no effect with loss={self.loss.value}; "
                    "set loss=ppo, or leave it at its default"
                )
        return self

    @model_validator(mode="after")
    def _groups_divide_batch(self) -> TrainSection:
        if self.games_per_iteration % self.group_size:
            raise ValueError(
                f"games_per_iteration={self.games_per_iteration} is not a multiple of "
                f"group_size={self.group_size}"
            )
        return self


class PoolSection(_Strict):
    enabled: bool = Field(False, description="Opponent pool of past checkpoints.")
    every: int = Field(10, ge=1, description="Checkpoint into the pool every N iterations.")
    p_past: float = Field(
        0.5,
        ge=0,
        le=1,
        description="P(opponent seat is a past checkpoint), drawn independently for each game.",
    )
    resident: int = Field(
        32,
        ge=1,
        description="Snapshots kept in the engine (least recently used out, reloaded from the "
        "run's pool/ folder when drawn again); an iteration drawing more distinct ones plays "
        "its games in waves of at most this many (the same records, smaller batches).",
    )


class EvalSection(_Strict):
    """Face-offs of the live policy against scripted bots during training (``Trainer.evaluate``):
    their numbers go into the metrics line of the iteration as ``eval/BOT/MEASURE``, and the
    run's report shows them."""

    every: int = Field(
        0,
        ge=0,
        description="Evaluate against the bots every N iterations and after the last "
        "(0: after the last only).",
    )
    bots: list[str] = Field(
        default_factory=list,
        description="Bots of the game to evaluate against (as in bot:NAME); none: no evaluation.",
    )
    games: int = Field(
        8,
        ge=1,
        description="Games per seat order against each bot (the same games at every "
        "evaluation); `detente faceoff` gives tighter intervals.",
    )


class LoggingSection(_Strict):
    """Where a run's metrics go besides ``metrics.jsonl`` (``train/tracking.py``)."""

    backends: list[Literal["tensorboard", "wandb", "trackio"]] = Field(
        default_factory=lambda: ["tensorboard"],
        description="tensorboard: event files in RUN_DIR/tensorboard (the tracking extra; "
        "without it a warning, and none); wandb, trackio: their own packages, an error "
        "without them (WANDB_MODE=offline works offline); []: metrics.jsonl only.",
    )
    project: str = Field("detente", description="The W&B / trackio project.")
    text_games: int = Field(
        1, ge=0, description="Games of each iteration logged as text (TensorBoard, W&B)."
    )


class VllmSection(_Strict):
    gpu_memory: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Fraction of GPU memory vLLM takes (weights and KV cache); the rest is the "
        "learner's where both share a GPU.",
    )
    max_loras: int = Field(
        8, ge=1, description="Adapters in one vLLM batch (requests of more wait their turn)."
    )
    sleep: bool = Field(
        True,
        description="Sleep after each rollout (weights to CPU, KV cache freed) so that the "
        "learner can train on the same GPU; wake for the next rollout.",
    )
    batch_invariant: bool = Field(
        False,
        description="vLLM's batch-invariant kernels (VLLM_BATCH_INVARIANT=1, slower): a reply "
        "no longer depends on the batch it was scheduled in, so the same seed gives the same "
        "rollouts. Off, vLLM's rollouts are seeded but not reproducible.",
    )


class RuntimeSection(_Strict):
    """Where rollouts run (the learner always runs in the trainer's process). Data-parallel
    learners are started by ``torchrun``, not configured here."""

    workers: int = Field(
        0,
        ge=0,
        description="Rollout workers: 0 plays in the trainer's process; N splits each "
        "iteration's games among N Ray actors, each with its own engine replica whose adapters "
        "are synced by name and version after every optimizer step. Same seed, same results "
        "(with engine=vllm only with runtime.vllm.batch_invariant).",
    )
    engine: EngineKind = Field(
        EngineKind.HF,
        description="Rollout engine: hf (transformers + peft; with workers=0 the trainer's own "
        "engine) or vllm (GPU only; pip install 'detente[vllm]').",
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster to join ('auto' on a node of a running cluster); None starts a "
        "local one, or uses the one this process already initialised.",
    )
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs (and torch threads) per worker.")
    gpus_per_worker: float = Field(
        0.0,
        ge=0,
        description="GPUs per worker (1 on a GPU cluster; a fraction shares one). 0 with a GPU "
        "learner or engine=vllm is an error: Ray would give the workers no GPU.",
    )
    max_replays: int = Field(
        3,
        ge=0,
        description="Times a shard is replayed on a fresh worker, per iteration, after its worker "
        "died; then the iteration fails.",
    )
    vllm: VllmSection = VllmSection()

    @model_validator(mode="after")
    def _vllm_workers_have_gpus(self) -> RuntimeSection:
        if self.engine is EngineKind.VLLM and self.workers and not self.gpus_per_worker:
            raise ValueError(
                "runtime.gpus_per_worker=0 gives the vLLM rollout workers no GPU; set it "
                "(1 per worker, or a fraction to share one)"
            )
        return self


class RunConfig(_Strict):
    """Everything a run needs; the resolved copy is saved in the run directory."""

    seed: int = Field(0, ge=0, lt=2**63, description="Seeds every random draw of the run.")
    game: GameSection = GameSection()
    model: ModelSection = ModelSection()
    sampling: SamplingSection = SamplingSection()
    train: TrainSection = TrainSection()
    pool: PoolSection = PoolSection()
    invalid: InvalidReplyConfig = InvalidReplyConfig()
    eval: EvalSection = EvalSection()
    logging: LoggingSection = LoggingSection()
    runtime: RuntimeSection = RuntimeSection()
    checkpoint_every: int = Field(1, ge=1, description="Checkpoint the run every N iterations.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the model runs.")

    @model_validator(mode="after")
    def _known_bots(self) -> RunConfig:
        from detente.policies.bots import bot_names

        known = bot_names(self.game.name)
        for name in self.eval.bots:
            if name not in known:
                raise ValueError(
                    f"eval.bots: no bot {name!r} for {self.game.name}"
                    f"{did_you_mean(name, known)}; known: {', '.join(known)}"
                )
        return self

    @model_validator(mode="after")
    def _opponent_or_pool(self) -> RunConfig:
        if self.train.opponent is not None and self.pool.enabled:
            raise ValueError(
                "train.opponent (a fixed opponent) and pool.enabled exclude each other"
            )
        return self

    @model_validator(mode="after")
    def _vllm_in_bf16_on_a_gpu(self) -> RunConfig:
        if self.runtime.engine is EngineKind.VLLM:
            if self.model.dtype != "bfloat16":
                raise ValueError(
                    "runtime.engine=vllm needs model.dtype=bfloat16: vLLM's LoRA kernels take "
                    "bf16/fp16 only, and a learner in the same dtype keeps the ratio near 1"
                )
            if self.device == "cpu":
                raise ValueError("runtime.engine=vllm runs on a GPU, not with device=cpu")
        return self


# ---- presets and overrides -----------------------------------------------------------------------


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, recursively for nested mappings (inputs are not modified)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _fragment(kind: str, name: str) -> dict[str, Any]:
    """A shipped ``presets/KIND/NAME.yaml``; for a game that ships none, its registration's
    ``preset``."""
    path = resources.files("detente") / "presets" / kind / f"{name}.yaml"
    if kind == "games" and not path.is_file() and name in game_names():
        registered = game_entry(name).preset
        if registered is not None:
            return copy.deepcopy(dict(registered))
    if not path.is_file():
        raise ConfigError(
            f"no {kind[:-1]} fragment {name!r} (looked for presets/{kind}/{name}.yaml)"
        )
    return yaml.safe_load(path.read_text()) or {}


def _names(kind: str) -> list[str]:
    """The fragments of ``kind`` (games: also the registered games with a preset of their own)."""
    folder = resources.files("detente") / "presets" / kind
    names = {p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")}
    if kind == "games":
        names |= {g for g in game_names() if game_entry(g).preset is not None}
    return sorted(names)


def preset_names() -> list[str]:
    """Every ``GAME-METHOD[-SCALE]`` combination the shipped fragments make."""
    out = []
    for game in _names("games"):
        for method in _names("methods"):
            out.append(f"{game}-{method}")
            out.extend(f"{game}-{method}-{s}" for s in _names("scales") if s != "gpu")
    return out


def preset(name: str) -> dict[str, Any]:
    """The raw (unvalidated) mapping of a preset: the game's fragment, then the method's, then
    the scale's, each followed by its ``for_games`` entry for this game."""
    games, methods, scales = _names("games"), _names("methods"), _names("scales")
    for game in sorted(games, key=len, reverse=True):
        if not name.startswith(game + "-"):
            continue
        method, _, scale = name[len(game) + 1 :].partition("-")
        if method in methods and (scale in scales or not scale):
            merged = _fragment("games", game)
            for data in (_fragment("methods", method), _fragment("scales", scale or "gpu")):
                per_game = data.pop("for_games", {})
                merged = deep_merge(deep_merge(merged, data), per_game.get(game, {}))
            return merged
    hint = did_you_mean(name, preset_names())
    example = "" if hint else "; e.g. " + ", ".join(preset_names()[:6]) + ","
    raise ConfigError(f"unknown preset {name!r}{hint}{example} (`detente presets` lists "
                      "them)")  # fmt: skip


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` → (["a","b","c"], YAML-parsed value)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    return key.split("."), yaml.safe_load(value) if value else ""


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
        node[path[-1]] = value
    return out


# Keys a resumed run may change: how long it runs and where its rollouts run (the same seed gives
# the same records with any number of workers); any other change would make another run.
RESUMABLE_KEYS = (
    "train.iterations",
    "runtime.workers",
    "runtime.ray_address",
    "runtime.cpus_per_worker",
    "runtime.gpus_per_worker",
    "runtime.max_replays",
    "logging",
)


def validate(data: dict[str, Any]) -> RunConfig:
    """A ``RunConfig``; errors name the offending key (``train.lrr: extra inputs ...``)."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(_problem(e) for e in error.errors())
        raise ConfigError(f"invalid config: {problems}") from None


def _section_of(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config model holding the key at ``loc`` (``("train", "lrr")`` → ``TrainSection``)."""
    model: Any = RunConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if isinstance(model, type) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _problem(error: Any) -> str:
    """One validation problem, naming the key; an unknown key with the closest valid one and
    the keys its section takes."""
    key = ".".join(str(p) for p in error["loc"]) or "<root>"
    if error["type"] == "extra_forbidden" and error["loc"]:
        section = _section_of(tuple(error["loc"]))
        if section is not None:
            valid = list(section.model_fields)
            prefix = ".".join(str(p) for p in error["loc"][:-1])
            hint = did_you_mean(str(error["loc"][-1]), valid)
            hint = hint.replace("mean ", f"mean {prefix}.") if prefix else hint
            where = prefix or "the config"
            return f"{key}: unknown key{hint} ({where} takes: {', '.join(valid)})"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message}" if error["loc"] else message


def load_config(source: str, overrides: list[str] | None = None) -> RunConfig:
    """From a preset name or a YAML file path, then overrides."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"config file {source} not found")
        data = read_yaml(path)
    else:
        data = preset(source)
    return validate(apply_overrides(data, overrides or []))


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; a ``ConfigError`` naming the file (and the line) for
    anything else."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read it ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of sections, not a {type(data).__name__}")
    return data


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def first_difference(a: RunConfig, b: RunConfig, ignore: tuple[str, ...] = ()) -> str:
    """The first key (dotted) whose value differs, as ``key: A != B``; "" when equal. Keys in
    ``ignore`` (dotted, e.g. ``RESUMABLE_KEYS``) are not compared."""

    def walk(x: Any, y: Any, key: str) -> str:
        if key in ignore:
            return ""
        if isinstance(x, dict) and isinstance(y, dict):
            for k in [*x, *(k for k in y if k not in x)]:
                found = walk(x.get(k), y.get(k), f"{key}.{k}" if key else str(k))
                if found:
                    return found
            return ""
        return "" if x == y else f"{key}: {x!r} != {y!r}"

    return walk(a.model_dump(mode="json"), b.model_dump(mode="json"), "")
