"""Run a study's tasks, in dependency order, on a few worker processes.

A study (the demo: per game a model build, then per seed five trainings and an evaluation) is a
graph of tasks that each run for minutes. On a CPU, two processes of one torch thread each do
about twice the work of one process of two threads (small models do not scale over threads), so
independent tasks run in ``jobs`` worker processes. A task's result depends only on its inputs
and its process's thread count, not on what ran beside it.

A task starts when every task it ``needs`` has finished; among the ready tasks the first listed
starts first. With ``jobs`` = 1 the tasks run in this process, in that same order.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from detente.environ import environment


@dataclass(frozen=True)
class Task:
    """``run(*args)`` once the tasks named in ``needs`` have finished. ``run`` must be a
    module-level function and ``args`` picklable (they travel to a worker process)."""

    key: str
    run: Callable[..., Any]
    args: tuple[Any, ...] = ()
    needs: tuple[str, ...] = ()


class TaskFailed(RuntimeError):
    """A task raised; the message names it (the original exception is the cause)."""


def available_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _check(tasks: Sequence[Task]) -> None:
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError(f"task keys repeat: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    position = {k: i for i, k in enumerate(keys)}
    for task in tasks:
        for need in task.needs:
            if need not in position:
                raise ValueError(f"task {task.key!r} needs {need!r}, which is not a task")
            if position[need] > position[task.key]:
                raise ValueError(f"task {task.key!r} is listed before {need!r}, which it needs")


class _Prefixed(io.TextIOBase):
    """A text stream that writes each line to ``sys.stdout`` after ``[key] ``."""

    def __init__(self, key: str) -> None:
        self._prefix, self._partial = f"[{key}] ", ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            sys.__stdout__.write(self._prefix + line + "\n")
        sys.__stdout__.flush()
        return len(text)


def _call_in_worker(key: str, run: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """``run(*args)`` with what it prints marked with its task (workers print side by side)."""
    stream = _Prefixed(key)
    with contextlib.redirect_stdout(stream):
        return run(*args)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_tasks(
    tasks: Sequence[Task],
    jobs: int,
    on_done: Callable[[str, Any, float], None] | None = None,
    description: str = "tasks",
    threads: int | None = None,
) -> dict[str, Any]:
    """Every task's result by key. ``on_done(key, result, seconds)`` runs in this process as
    each task finishes. With ``jobs`` > 1 each worker runs ``threads`` torch threads (default:
    the cores shared out, at least 1). A failing task stops the run: no new task starts, the
    running ones finish, and :class:`TaskFailed` names the task."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    _check(tasks)
    results: dict[str, Any] = {}
    bar = tqdm(total=len(tasks), desc=description, unit="task", disable=False)

    def finished(key: str, result: Any, seconds: float) -> None:
        results[key] = result
        bar.update()
        if on_done is not None:
            on_done(key, result, seconds)

    with bar:
        if jobs == 1:
            for task in tasks:
                bar.set_postfix_str(task.key)
                start = time.monotonic()
                try:
                    result = task.run(*task.args)
                except Exception as error:
                    raise TaskFailed(f"{task.key}: {error}") from error
                finished(task.key, result, time.monotonic() - start)
            return results
        _run_in_workers(tasks, jobs, threads or max(1, available_cores() // jobs), finished, bar)
    return results


def _run_in_workers(
    tasks: Sequence[Task],
    jobs: int,
    threads: int,
    finished: Callable[[str, Any, float], None],
    bar: tqdm,
) -> None:
    pending = list(tasks)
    completed: set[str] = set()
    running: dict[Future[Any], tuple[str, float]] = {}
    context = multiprocessing.get_context("spawn")
    # workers see one thread count and no progress bars of their own (they would overwrite each
    # other's lines); a spawned process copies the environment when it starts
    worker_environment = {"OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    with (
        environment(worker_environment),
        ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)
        ) as pool,
    ):
        failure: TaskFailed | None = None
        while pending or running:
            while failure is None and len(running) < jobs:
                ready = next((t for t in pending if completed.issuperset(t.needs)), None)
                if ready is None:
                    break
                pending.remove(ready)
                future = pool.submit(_call_in_worker, ready.key, ready.run, ready.args)
                running[future] = (ready.key, time.monotonic())
            if not running:
                break
            bar.set_postfix_str(", ".join(key for key, _ in running.values()))
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                key, start = running.pop(future)
                error = future.exception()
                if error is not None:
                    if failure is None:
                        failure = TaskFailed(f"{key}: {error}")
                        failure.__cause__ = error
                    continue
                completed.add(key)
                finished(key, future.result(), time.monotonic() - start)
        if failure is not None:
            raise failure
