"""Tasks in dependency order on worker processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from detente.studies.schedule import Task, TaskFailed, run_tasks


def _write_after(path: str, text: str, delay: float) -> tuple[int, str]:
    """Sleeps, appends ``text`` to ``path``; returns the worker's pid and what it saw before."""
    time.sleep(delay)
    seen = Path(path).read_text() if Path(path).exists() else ""
    with open(path, "a") as f:
        f.write(text)
    return os.getpid(), seen


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _say(text: str) -> None:
    print(text, end="")
    print(" and more\nsecond line")


def _fail(message: str) -> None:
    raise ValueError(message)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_task_starts_only_after_the_tasks_it_needs(tmp_path, jobs) -> None:
    log = str(tmp_path / "log")
    tasks = [
        Task("slow", _write_after, (log, "slow;", 0.5)),
        Task("fast", _write_after, (log, "fast;", 0.0)),
        Task("after both", _write_after, (log, "last;", 0.0), ("slow", "fast")),
    ]
    seconds: dict[str, float] = {}
    results = run_tasks(tasks, jobs, lambda key, _, took: seconds.setdefault(key, took))
    assert set(results) == set(seconds) == {"slow", "fast", "after both"}
    assert set(results["after both"][1].split(";")) == {"slow", "fast", ""}
    assert Path(log).read_text().endswith("last;")
    pids = {pid for pid, _ in results.values()}
    if jobs == 1:
        assert pids == {os.getpid()}
    else:  # the two independent tasks ran side by side, the fast one first
        assert os.getpid() not in pids
        assert results["slow"][1] == "fast;"
        assert seconds["slow"] >= 0.5


def test_workers_run_the_threads_asked_for() -> None:
    results = run_tasks([Task(f"t{k}", _torch_threads) for k in range(2)], jobs=2, threads=1)
    assert set(results.values()) == {1}


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failing_task_is_named_and_nothing_after_it_starts(tmp_path, jobs) -> None:
    log = str(tmp_path / "log")
    tasks = [
        Task("breaks", _fail, ("bad config key",)),
        Task("needs it", _write_after, (log, "ran", 0.0), ("breaks",)),
    ]
    with pytest.raises(TaskFailed, match="^breaks: bad config key$") as caught:
        run_tasks(tasks, jobs)
    assert isinstance(caught.value.__cause__, ValueError)
    assert not Path(log).exists()


def test_a_task_list_is_checked_before_anything_runs(tmp_path) -> None:
    log = str(tmp_path / "log")
    first = Task("a", _write_after, (log, "a", 0.0))
    with pytest.raises(ValueError, match="repeat"):
        run_tasks([first, first], 1)
    with pytest.raises(ValueError, match="needs 'missing', which is not a task"):
        run_tasks([first, Task("b", _fail, ("x",), ("missing",))], 1)
    with pytest.raises(ValueError, match="listed before 'a'"):
        run_tasks([Task("b", _fail, ("x",), ("a",)), first], 1)
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        run_tasks([first], 0)
    assert not Path(log).exists()


def test_what_a_worker_prints_is_marked_with_its_task(capfd) -> None:
    run_tasks([Task("first", _say, ("hello",)), Task("other", _say, ("hi",))], jobs=2)
    lines = capfd.readouterr().out.splitlines()
    assert "[first] hello and more" in lines and "[other] hi and more" in lines
    assert lines.count("[first] second line") == 1
