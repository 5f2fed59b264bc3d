"""The training loop: play a batch of games, credit every learner seat, one optimizer step.

One iteration (SPEC §2):
1. games in seed groups; seats: self-play (both seats learn the live adapter), or with the
   opponent pool one learner seat per group and, drawn for each game, an opponent that is a
   past checkpoint with probability ``p_past``, else the live policy (not learning);
2. per-round credits of learner seats (returns → leave-one-out baseline → credit method);
3. token-level loss over the learner seats' sampled tokens, accumulated over mini-batches and
   normalised by the iteration's action-token count, gradient clipping, an Adam step: one
   (``train.loss`` reinforce), or ``train.ppo_epochs`` passes over the same mini-batches in the
   same order, a step after each (ppo; the PPO-clipped loss against π_old, the live policy's
   log-probs of the iteration's tokens scored once, without dropout, before the first step);
4. metrics line, transcripts, checkpoint (atomic), pool snapshot every ``pool.every`` iterations.

Every random draw derives from (run seed, iteration, purpose, keys) (``iteration_seed``), so a
resumed run replays exactly.

Guards: a non-finite loss term or gradient norm stops the run before the optimizer step, and a
step that leaves the adapter non-finite stops it before anything of that iteration is written,
so the run directory always holds the last finite checkpoint. One process at a time holds a run
directory (``lock_run``); ``resume`` refuses a ``config.yaml`` changed since the checkpoint was
written (naming the first difference; ``RESUMABLE_KEYS`` may change), drops a metrics line torn
by a crash and removes a crash's temporary files.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from detente.agents import make_agent, share_batcher
from detente.config import RESUMABLE_KEYS, RunConfig, dump_config, first_difference
from detente.evaluate.faceoff import against_opponents
from detente.evaluate.metrics import game_measures, reward_measures
from detente.games import make_game
from detente.learn.batch import TokenSequence, seat_credits, token_sequences
from detente.learn.checkpoint import (
    RunDirError,
    RunLock,
    TrainState,
    atomic_write_text,
    latest_checkpoint,
    load_state,
    lock_run,
    remove_temporaries,
    restore_rng_states,
    save_checkpoint,
)
from detente.learn.loss import LossTerms, LossType, ppo_token_loss, token_loss
from detente.learn.pool import ResidentPool, waves
from detente.learn.scoring import ActionScores, PaddedBatch, action_logprobs, pad_batch
from detente.lm.engine import Engine
from detente.lm.models import load_engine, precision, usable_device
from detente.policies.base import Policy
from detente.policies.bots import make_bot
from detente.policies.lm import LMBatcher, LMPolicy
from detente.protocol import make_protocol
from detente.rollout.records import GameRecord, write_records
from detente.rollout.runner import Match, derive_seed, reply_stats
from detente.train.backends import make_rollouts
from detente.train.distributed import DataParallel
from detente.train.tracking import Tracker, check_backends, make_trackers

LIVE = "live"
PPO_DIAGNOSTICS = ("approx_kl", "ppo_clip_fraction")  # metrics of train.loss=ppo only


class Purpose(IntEnum):
    """What a seed of an iteration is for: the key after (run seed, iteration) in
    ``iteration_seed``, so that seeds of different purposes never share their key sequence."""

    ENV = 1  # a seed group's environment seed; keyed further by the group index
    ROLLOUT = 2  # the rollout's sampling seed
    SEATS = 3  # the opponent draws of the pool
    DROPOUT = 4  # LoRA dropout of the update; keyed further by learner rank and mini-batch
    # (numbered on over the epochs of loss=ppo: epoch · mini-batches + index)
    EVAL = 5  # the evaluation against eval.bots; keyed further by 0 (games) or 1 (sampling)


def iteration_seed(seed: int, iteration: int, purpose: Purpose, *keys: int) -> int:
    """derive_seed(seed, iteration, purpose, *keys): each purpose takes a fixed number of
    further keys (ENV: the group; ROLLOUT, SEATS: none; DROPOUT: rank and mini-batch; EVAL: 0 for the
    games, keyed with iteration 0 so that every evaluation plays the same games, 1 for the
    sampling), so no two
    seeds of a run share keys."""
    return derive_seed(seed, iteration, int(purpose), *keys)


def opponent_draws(
    rng: np.random.Generator, games: int, pool_size: int, p_past: float
) -> list[int | None]:
    """For each game, independently: the index of a past checkpoint for the opponent seat, with
    probability ``p_past`` and uniform over the pool, else None (the live policy). An empty pool
    gives None everywhere."""
    if pool_size == 0:
        return [None] * games
    past = rng.random(games) < p_past
    which = rng.integers(pool_size, size=games)
    return [int(w) if p else None for p, w in zip(past, which, strict=True)]


class NonFiniteUpdate(RuntimeError):
    """A loss term or the gradient norm of an update is NaN or ±inf (no optimizer step was
    taken), or the step left the adapter non-finite (nothing of the iteration was written): the
    run directory holds the last finite checkpoint."""


@dataclass
class UpdateStats:
    """The update's loss terms (:class:`~detente.learn.loss.LossTerms`) and gradient norm; with
    ``train.loss`` ppo those of its last epoch (before its step, as CleanRL's ``ppo.py`` logs
    them). ``approx_kl`` and ``ppo_clip_fraction`` (``PPO_DIAGNOSTICS``) are 0 with reinforce
    (its one step is taken at θ = θ_old) and only in the metrics line of ppo."""

    loss: float
    pg: float
    kl: float
    entropy: float
    mean_ratio: float
    clip_fraction: float
    grad_norm: float
    action_tokens: int
    approx_kl: float = 0.0
    ppo_clip_fraction: float = 0.0


class Trainer:
    """Owns the engine, the live adapter, the optimizer and the run directory."""

    def __init__(self, config: RunConfig, run_dir: Path, engine: Engine | None = None) -> None:
        check_backends(config)
        self.config = config
        self.run_dir = run_dir
        self.dp = DataParallel.from_env()
        device = self.dp.device(usable_device(config.device))  # cuda:LOCAL_RANK under torchrun
        self.precision = precision(device, config.model.dtype)
        self.engine = engine or load_engine(
            config.model.name, device=device, dtype=self.precision.weights
        )
        self.game_config = config.game.game_config()
        self.protocol = make_protocol(config.game.name, config.game.style, self.game_config)
        lora = config.model.lora
        if LIVE not in self.engine.adapter_names():
            self.engine.add_adapter(
                LIVE, r=lora.r, alpha=lora.alpha, dropout=lora.dropout,
                target_modules=lora.target_modules, init_seed=config.seed,
            )
        self.params = list(self.engine.parameters_of(LIVE))
        self.optimizer = torch.optim.Adam(self.params, lr=config.train.lr)
        sampling = config.sampling
        self.batcher = LMBatcher(
            self.engine, sampling.temperature, sampling.top_p,
            sampling.max_message_tokens, sampling.max_move_tokens,
        )
        self.live = LMPolicy(self.batcher, LIVE, "live")
        share_batcher(config.model.name, self.batcher)
        self.rollouts = make_rollouts(config, self.engine, self.batcher, self.protocol)
        self.opponent = (
            make_agent(config.train.opponent, config.game.name) if config.train.opponent else None
        )
        self.eval_bots = [make_bot(config.game.name, name) for name in config.eval.bots]
        self.state = TrainState(iteration=0)
        self.lock: RunLock | None = None  # held by create() and resume() (main learner)
        self.trackers: list[Tracker] = []  # logging.backends, while run() runs
        self.on_phase: Callable[[str], None] = lambda phase: None  # progress within an iteration
        self.snapshots = ResidentPool(self.engine, run_dir / "pool", config.pool.resident)
        self.game_scale = make_game(config.game.name, self.game_config, 0).reward_scale

    # ---- run directory -----------------------------------------------------------------------
    @classmethod
    def create(cls, config: RunConfig, run_dir: Path, engine: Engine | None = None) -> Trainer:
        """A new run; an existing non-empty directory is never overwritten. A failure before
        the trainer is made (e.g. a model that cannot be loaded, a bot misspelled in eval.bots)
        removes what this call wrote (``config.yaml``, the lock file, the folders it made), so
        the corrected command can use the same directory."""
        lock = None
        made: list[Path] = []  # folders this call created, innermost first
        if DataParallel.from_env().main:  # data-parallel peers write nothing
            if run_dir.exists() and not run_dir.is_dir():
                raise RunDirError(f"{run_dir} is a file, not a run directory")
            _check_empty(run_dir, config)
            folder = run_dir
            while not folder.exists():
                made.append(folder)
                folder = folder.parent
            run_dir.mkdir(parents=True, exist_ok=True)
            lock = lock_run(run_dir)
            try:
                _check_empty(run_dir, config)  # again: another process may have started it
            except RunDirError:
                lock.release()
                raise
            atomic_write_text(run_dir / "config.yaml", dump_config(config))
        try:
            trainer = cls(config, run_dir, engine)
        except BaseException:
            if lock is not None:
                (run_dir / "config.yaml").unlink(missing_ok=True)
                (run_dir / ".lock").unlink(missing_ok=True)
                lock.release()
                for folder in made:
                    if folder.is_dir() and not any(folder.iterdir()):
                        folder.rmdir()
            raise
        trainer.lock = lock
        return trainer

    @classmethod
    def resume(
        cls, run_dir: Path, engine: Engine | None = None, overrides: Sequence[str] = ()
    ) -> Trainer:
        """Continue a run exactly where its last complete checkpoint stopped. ``overrides``
        may change ``RESUMABLE_KEYS`` only (e.g. ``train.iterations=N`` extends a finished
        run); they are written into the run's ``config.yaml``."""
        from detente.config import load_config

        if not (run_dir / "config.yaml").is_file():
            if not run_dir.exists():
                raise RunDirError(f"{run_dir}: no such run directory")
            raise RunDirError(f"{run_dir} holds no run (no config.yaml)")
        main = DataParallel.from_env().main
        lock = lock_run(run_dir) if main else None
        try:
            config = load_config(str(run_dir / "config.yaml"))
            if overrides:
                changed = load_config(str(run_dir / "config.yaml"), list(overrides))
                difference = first_difference(config, changed, RESUMABLE_KEYS)
                if difference:
                    raise RunDirError(
                        f"a resumed run keeps its config; only {', '.join(RESUMABLE_KEYS)} may "
                        f"change ({difference.split(':')[0]} may not)"
                    )
            folder = latest_checkpoint(run_dir)
            if folder is not None:
                _check_same_config(run_dir, folder, config)
            if overrides:
                done = load_state(folder).iteration if folder is not None else 0
                if changed.train.iterations < done:
                    raise RunDirError(f"{run_dir} has {done} iterations done; train.iterations="
                                      f"{changed.train.iterations} is fewer")  # fmt: skip
                config = changed
                if main:
                    atomic_write_text(run_dir / "config.yaml", dump_config(config))
            if main:
                remove_temporaries(run_dir)
            trainer = cls(config, run_dir, engine)
            trainer.lock = lock
            if folder is not None:
                trainer._restore(folder)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if main:
            trainer._truncate_metrics()
        return trainer

    def _restore(self, folder: Path) -> None:
        """Adapter, optimizer, generator states and pool of checkpoint ``folder``; a damaged
        file is a ``RunDirError`` naming it."""

        def read(name: str, load: Any) -> Any:
            try:
                return load(folder / name)
            except Exception as error:
                reason = " ".join(str(error).split())[:300] or type(error).__name__
                raise RunDirError(f"checkpoint file {folder / name} is damaged ({reason})") from None

        self.state = read("state.json", lambda path: load_state(path.parent))
        read("adapter", lambda path: self.engine.load_adapter(LIVE, path, trainable=True))
        self.optimizer.load_state_dict(read("optimizer.pt", torch.load))
        restore_rng_states(read("rng.pt", lambda path: torch.load(path, weights_only=False)))
        held = set(self.engine.adapter_names())  # the rest load when drawn
        self.snapshots = ResidentPool(
            self.engine, self.run_dir / "pool", self.config.pool.resident,
            [name for name in self.state.pool if name in held],
        )

    def close(self) -> None:
        """Release the run directory (the lock also goes when the process ends) and what a
        fixed opponent holds (an API client's thread and connections)."""
        if self.opponent is not None:
            self.opponent.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _truncate_metrics(self) -> None:
        """Drop metric lines of iterations after the checkpoint (they will be replayed), and a
        last line cut off by a crash mid-append (e.g. a full disk); a damaged line elsewhere is
        a ``RunDirError`` naming it."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        kept = []
        for number, line in enumerate(lines, start=1):
            try:
                iteration = json.loads(line)["iteration"]
            except (json.JSONDecodeError, KeyError, TypeError):
                if number == len(lines):  # torn by the crash: its iteration will be replayed
                    break
                raise RunDirError(f"{path}, line {number}: not a metrics line") from None
            if iteration < self.state.iteration:
                kept.append(line)
        atomic_write_text(path, "".join(line + "\n" for line in kept))

    # ---- one iteration -------------------------------------------------------------------------
    def matches(self, iteration: int) -> list[Match]:
        """This iteration's games: seed groups, seats, learners (deterministic in the seed).
        With the pool, the opponent is drawn for each game (``opponent_draws``)."""
        train, seed = self.config.train, self.config.seed
        rng = np.random.default_rng(iteration_seed(seed, iteration, Purpose.SEATS))
        draws = opponent_draws(
            rng, train.games_per_iteration, len(self.state.pool), self.config.pool.p_past
        )
        past = [LMPolicy(self.batcher, name, name) for name in self.state.pool]
        out = []
        for index, draw in enumerate(draws):
            group, k = divmod(index, train.group_size)
            env_seed = iteration_seed(seed, iteration, Purpose.ENV, group)
            game = make_game(self.config.game.name, self.game_config, env_seed)
            players = game.num_players
            learner = group % players  # one learner seat per group: cycles over the seats
            if self.opponent is not None:
                opponent: Policy | None = self.opponent
            elif self.config.pool.enabled:
                opponent = self.live if draw is None else past[draw]
            else:
                opponent = None  # self-play: both seats are the live, learning policy
            if opponent is None:
                seats, learners = (self.live,) * players, (True,) * players
            else:  # the same opponent (a policy plays any number of seats) in every other seat
                seats = tuple(self.live if p == learner else opponent for p in range(players))
                learners = tuple(p == learner for p in range(players))
            out.append(Match(game, seats, f"it{iteration}-g{group}-{k}", group, learners))
        return out

    def rollout(self, iteration: int) -> list[GameRecord]:
        """This iteration's games, played by ``runtime`` workers or here; with data-parallel
        learners each plays its share and all get every record. The games are played in waves
        that draw at most ``pool.resident`` snapshots each (one wave, usually)."""
        seed = iteration_seed(self.config.seed, iteration, Purpose.ROLLOUT)
        matches = self.matches(iteration)
        part = self.dp.part(len(matches))
        mine = matches[part.start : part.stop]
        drawn = [self._snapshot_of(m) for m in mine]
        records: list[GameRecord] = []
        for wave in waves(drawn, self.snapshots.capacity):
            self.snapshots.hold({n for n in drawn[wave.start : wave.stop] if n is not None})
            shard = mine[wave.start : wave.stop]
            records += self.rollouts.play(shard, seed, part.start + wave.start)
        return self.dp.gather(records)

    def _snapshot_of(self, match: Match) -> str | None:
        """The pool snapshot playing in ``match``, if any."""
        for policy in match.policies:
            if isinstance(policy, LMPolicy) and policy.adapter in self.state.pool:
                return policy.adapter
        return None

    def update(self, records: list[GameRecord]) -> UpdateStats:
        """Credits → token loss → accumulated gradient → clipped Adam step(s): one with
        ``train.loss`` reinforce; with ppo, π_old of the mini-batches (scored once, no
        gradient, no dropout), then ``train.ppo_epochs`` passes over them, a step after each."""
        train = self.config.train
        sequences = token_sequences(records, seat_credits(records, train, self.game_scale))
        total_tokens = sum(s.action_tokens for s in sequences)
        if total_tokens == 0:
            raise RuntimeError("no action tokens to learn from")
        share = self.dp.part(len(sequences))  # each data-parallel learner its share, loss ÷ N
        chunks = _chunks(sequences[share.start : share.stop], train.minibatch_sequences)
        pad_id, device = self.engine.chat.pad_id, self.engine.device
        batches = [pad_batch(chunk, pad_id, device) for chunk in chunks]
        epochs = 1
        if train.loss is LossType.PPO:  # π_old, before the first step
            with torch.no_grad():
                batches = [replace(b, old_logp=self._live_scores(b).logp) for b in batches]
            epochs = train.ppo_epochs
        for epoch in range(epochs):
            if epochs > 1:
                self.on_phase(f"iteration {self.state.iteration + 1}: learning, epoch "
                              f"{epoch + 1}/{epochs}")  # fmt: skip
            stats = self._step(batches, total_tokens, first_chunk=epoch * len(batches))
        return stats

    def _step(self, batches: list[PaddedBatch], total_tokens: int, first_chunk: int) -> UpdateStats:
        """One pass over ``batches``: accumulated gradient, reduced over learners, clipped, one
        Adam step (``first_chunk`` numbers the pass's mini-batches for the dropout seeds)."""
        self.optimizer.zero_grad(set_to_none=True)
        sums = dict.fromkeys(_statistic_keys(self.config.train.loss), 0.0)
        for index, batch in enumerate(batches):
            with self._dropout(first_chunk + index):
                sums_chunk = self._accumulate(batch, total_tokens)
            for key, value in sums_chunk.items():
                sums[key] += value
        self.dp.reduce_gradients(self.params)
        sums = self.dp.sum_values(sums)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.config.train.grad_clip))
        stats = UpdateStats(**sums, grad_norm=grad_norm, action_tokens=total_tokens)
        nonfinite = [k for k, v in stats.__dict__.items() if not math.isfinite(v)]
        if nonfinite:  # every data-parallel learner sees the same reduced values, all raise
            raise NonFiniteUpdate(f"non-finite {', '.join(nonfinite)}: no optimizer step taken")
        self.optimizer.step()
        self.engine.drop_caches([LIVE])  # activations of the old weights must not be reused
        if not all(bool(torch.isfinite(p).all()) for p in self.params):
            raise NonFiniteUpdate(
                "the optimizer step left the adapter non-finite (is train.lr too large?); "
                "nothing of this iteration was written"
            )
        return stats

    @contextmanager
    def _dropout(self, chunk: int) -> Iterator[None]:
        """The live adapter's LoRA dropout on, drawn from a seed of (run, iteration, learner,
        mini-batch) on every device, so a resumed run drops the same units; nothing with 0."""
        if not self.config.model.lora.dropout:
            yield
            return
        device = self.engine.device
        seed = iteration_seed(
            self.config.seed, self.state.iteration, Purpose.DROPOUT, self.dp.rank, chunk
        )
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=device.type):
            torch.manual_seed(seed)
            with self.engine.adapter_dropout(LIVE):
                yield

    def _live_scores(self, batch: PaddedBatch) -> ActionScores:
        """The live policy's scores of ``batch`` (the training forward; π_old without grad)."""
        sampling, autocast = self.config.sampling, self.precision.autocast
        with self.engine.use_adapter(LIVE) as model:
            return action_logprobs(model, batch, sampling.temperature, sampling.top_p, autocast)

    def _accumulate(self, batch: PaddedBatch, total_tokens: int) -> dict[str, float]:
        """Back-propagates the loss of one mini-batch (PPO-clipped where it holds π_old) and
        returns its statistics; every one of its N positions is an action token."""
        train = self.config.train
        live = self._live_scores(batch)
        logp, entropy = live.logp, live.entropy
        if train.kl_coef > 0:  # the base on the live policy's support (same tokens for k3)
            sampling, autocast = self.config.sampling, self.precision.autocast
            with torch.no_grad(), self.engine.use_adapter(None) as model:
                base_logp = action_logprobs(
                    model, batch, sampling.temperature, autocast=autocast, support=live.support
                ).logp
        else:
            base_logp = logp.detach()
        actions = torch.ones_like(logp, dtype=torch.bool)
        common = {
            "sampler_logp": batch.sampler_logp, "base_logp": base_logp, "credits": batch.credit,
            "mask": actions, "entropy": entropy, "kl_coef": train.kl_coef,
            "entropy_coef": train.entropy_coef, "ratio_cap": train.ratio_cap,
            "normaliser": total_tokens,
        }  # fmt: skip
        if batch.old_logp is None:
            terms = token_loss(logp, **common)
        else:
            terms = ppo_token_loss(logp, batch.old_logp, clip_epsilon=train.clip_epsilon, **common)
        terms.total.backward()
        return _statistics(terms)

    # ---- the loop ------------------------------------------------------------------------------
    def run(self, progress: bool = True) -> None:
        """Iterations up to ``train.iterations``. ``progress``: a bar on a terminal, else (a
        file, a pipe) one plain line per iteration on standard output."""
        config = self.config
        start = self.state.iteration
        terminal = progress and sys.stderr.isatty()
        bar = tqdm(
            total=config.train.iterations, initial=start, desc=f"train {config.game.name} "
            f"{config.train.method}", unit="it", disable=not terminal,
        )
        self.trackers = make_trackers(config, self.run_dir, start) if self.dp.main else []
        try:
            if terminal:
                self.on_phase = lambda phase: bar.set_postfix_str(phase, refresh=True)
            with bar:
                for iteration in range(start, config.train.iterations):
                    t0 = time.perf_counter()
                    metrics = self.iteration(iteration)
                    bar.update(1)
                    bar.set_postfix(_postfix(metrics))
                    if progress and not terminal and self.dp.main:
                        print(iteration_line(metrics, config.train.iterations,
                                             time.perf_counter() - t0), flush=True)  # fmt: skip
        finally:
            for tracker in self.trackers:
                tracker.close()
            self.trackers = []

    def iteration(self, iteration: int) -> dict[str, Any]:
        """Play, learn, record, checkpoint one iteration; returns its metrics line."""
        t0 = time.perf_counter()
        self.on_phase(f"iteration {iteration + 1}: playing")
        records = self.rollout(iteration)
        t1 = time.perf_counter()
        self.on_phase(f"iteration {iteration + 1}: learning")
        stats = self.update(records)
        t2 = time.perf_counter()
        metrics = self._metrics(iteration, records, stats, rollout_s=t1 - t0, update_s=t2 - t1)
        if self.dp.main and self.evaluates(iteration):
            t3 = time.perf_counter()
            self.on_phase(f"iteration {iteration + 1}: evaluating against the bots")
            metrics.update(self.evaluate(iteration))
            metrics["eval_s"] = time.perf_counter() - t3
        if self.dp.main:
            line = json.dumps(metrics, allow_nan=False)  # ±inf is an error, never `Infinity`
            write_records(self.run_dir / "transcripts" / f"iter-{iteration:06d}.jsonl.gz", records)
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(line + "\n")
            for tracker in self.trackers:
                tracker.log(iteration, metrics, records)
        self.state.iteration = iteration + 1
        pool = self.config.pool
        if pool.enabled and self.state.iteration % pool.every == 0:
            name = f"pool-{self.state.iteration:06d}"
            self.snapshots.take(LIVE, name, save=self.dp.main)  # data-parallel peers write nothing
            self.state.pool.append(name)
        done = self.state.iteration == self.config.train.iterations
        if self.dp.main and (done or self.state.iteration % self.config.checkpoint_every == 0):
            save_checkpoint(
                self.run_dir, self.state, lambda path: self.engine.save_adapter(LIVE, path),
                self.optimizer, config_text=dump_config(self.config),
            )
        return metrics

    def evaluates(self, iteration: int) -> bool:
        """Whether iteration ``iteration`` ends with an evaluation: every ``eval.every``
        iterations and after the last (``eval.every`` 0: after the last only), where
        ``eval.bots`` names any."""
        every, last = self.config.eval.every, iteration + 1 == self.config.train.iterations
        return bool(self.eval_bots) and (last or (every > 0 and (iteration + 1) % every == 0))

    def evaluate(self, iteration: int) -> dict[str, float | None]:
        """The live policy against each of ``eval.bots``, ``eval.games`` games per seat order,
        in the training protocol and reply rules (the same games at every evaluation); flat
        keys ``eval/BOT/MEASURE`` (``against_opponents``). Played here, on the trainer's
        engine, whatever ``runtime`` plays the training games."""
        seed = self.config.seed
        results = against_opponents(
            self.config.game.name, self.live, self.eval_bots, self.protocol,
            self.config.eval.games, iteration_seed(seed, 0, Purpose.EVAL, 0),
            iteration_seed(seed, iteration, Purpose.EVAL, 1), self.game_config,
            self.config.invalid,
        )  # fmt: skip
        return {
            f"eval/{name.removeprefix('bot:')}/{key}": value
            for name, line in results.items()
            for key, value in line.items()
        }

    def _metrics(
        self, iteration: int, records: list[GameRecord], stats: UpdateStats, **seconds: float
    ) -> dict[str, Any]:
        """The metrics line. A measure with nothing to measure this iteration (a mean over no
        games or turns, NaN) is null; the update's terms are finite (``NonFiniteUpdate``
        otherwise), and the line is written with ``allow_nan=False``, so it never holds NaN or
        Infinity."""
        learner_seats = [(r, p) for r in records for p in range(len(r.seats)) if r.seats[p].learner]
        other_seats = [(r, q) for r, p in learner_seats for q in range(len(r.seats)) if q != p]
        live_seats = [
            (r, p) for r in records for p in range(len(r.seats)) if r.seats[p].agent == LIVE
        ]
        generated = sum(len(t.token_ids) for r in records for s in r.seats for t in s.turns)
        line: dict[str, Any] = {"iteration": iteration}
        line.update(reward_measures(learner_seats))
        line["opponent_reward"] = reward_measures(other_seats)["reward"]
        line.update(game_measures(self.config.game.name, live_seats))
        line.update(reply_stats(records))
        left_out = () if self.config.train.loss is LossType.PPO else PPO_DIAGNOSTICS
        line.update({k: v for k, v in stats.__dict__.items() if k not in left_out})
        line.update(seconds)
        line["tokens_per_s"] = generated / seconds["rollout_s"] if seconds["rollout_s"] else 0.0
        line["pool_size"] = len(self.state.pool)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in line.items()}


def _check_empty(run_dir: Path, config: RunConfig) -> None:
    """A new run needs an empty directory. The error advises ``detente resume`` only where the
    run there has this config (but for ``RESUMABLE_KEYS``), and names the difference else."""
    from detente.config import ConfigError, read_yaml, validate

    if not (run_dir.is_dir() and any(p.name != ".lock" for p in run_dir.iterdir())):
        return
    try:
        saved = validate(read_yaml(run_dir / "config.yaml"))
    except ConfigError:
        saved = None
    if saved is None:
        raise RunDirError(f"{run_dir} exists, is not empty and holds no run; choose another --out")
    difference = first_difference(saved, config, RESUMABLE_KEYS)
    if difference:
        raise RunDirError(
            f"{run_dir} holds another run (first difference: {difference}); choose another "
            "--out, or leave it to the default name, which names the overrides"
        )
    hint = f"detente resume {run_dir}"
    if saved.train.iterations != config.train.iterations:
        hint += f" train.iterations={config.train.iterations}"
    raise RunDirError(f"{run_dir} already holds this run; continue it with `{hint}`")


def _check_same_config(run_dir: Path, folder: Path, config: RunConfig) -> None:
    """Refuse to resume with a config other than the one checkpoint ``folder`` was trained
    with (but for ``RESUMABLE_KEYS``); checkpoints written before configs were kept pass."""
    from detente.config import ConfigError, read_yaml, validate

    saved_path = folder / "config.yaml"
    if not saved_path.is_file():
        return
    try:
        saved = validate(read_yaml(saved_path))
    except ConfigError as error:
        raise RunDirError(f"checkpoint file {saved_path} is damaged ({error})") from None
    difference = first_difference(saved, config, RESUMABLE_KEYS)
    if difference:
        raise RunDirError(
            f"{run_dir / 'config.yaml'} was changed since checkpoint {folder.name} was written "
            f"(first difference: {difference}); resuming would mix two runs. Restore it, or "
            "start a new run (only " + ", ".join(RESUMABLE_KEYS) + " may change on resume)"
        )


def _statistic_keys(loss: LossType) -> tuple[str, ...]:
    """The summed statistics of an update with ``loss`` (the fields of ``_statistics``)."""
    keys = ("loss", "pg", "kl", "entropy", "mean_ratio", "clip_fraction")
    return (*keys, *PPO_DIAGNOSTICS) if loss is LossType.PPO else keys


def _statistics(terms: LossTerms) -> dict[str, float]:
    """A mini-batch's detached loss terms (those not None), to be summed over mini-batches."""
    values = {
        "loss": float(terms.total.detach()), "pg": terms.pg, "kl": terms.kl,
        "entropy": terms.entropy, "mean_ratio": terms.mean_ratio,
        "clip_fraction": terms.clip_fraction, "approx_kl": terms.approx_kl,
        "ppo_clip_fraction": terms.ppo_clip_fraction,
    }  # fmt: skip
    return {k: v for k, v in values.items() if v is not None}


def _chunks(items: list[TokenSequence], size: int) -> list[list[TokenSequence]]:
    ordered = sorted(items, key=lambda s: len(s.tokens))  # similar lengths pad less
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def iteration_line(metrics: dict[str, Any], iterations: int, seconds: float) -> str:
    """The plain progress line of an iteration (output that is not a terminal)."""
    shown = " ".join(f"{k} {v}" for k, v in _postfix(metrics).items())
    return f"iteration {metrics['iteration'] + 1}/{iterations}: {shown} ({seconds:.1f} s)"


def _postfix(metrics: dict[str, Any]) -> dict[str, str]:
    keys = ("reward", "coop_rate", "invalid_rate", "loss")
    return {k: f"{metrics[k]:.3f}" for k in keys if isinstance(metrics.get(k), float)}

