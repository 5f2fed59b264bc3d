"""Policy calls without a barrier: each request goes out as soon as its policy can take it.

A policy that answers alone, or a batcher with its policies (e.g. the adapters of one
language-model engine), is a *group*: its requests are served together (:func:`dispatch`).
Groups run on *lanes*, one call at a time per lane, each call on a thread of its own; when the
lane is free, a call takes the requests of its group waiting then, and never waits for more.
All batchers share one lane (batchers over one engine, sampling differently, must not run it
from two threads at once); every other policy has a lane of its own. An ``overlapping`` policy
(an API: many HTTP calls in flight under its own bound) has no lane: each request is submitted
on its own as it is asked.

A request comes with a *stage* (the runner's: the phases its game has played, the attempt) and
an *order* (its place in a lockstep batch). A batcher's call takes the waiting requests of the
lowest stage only: an engine's call lasts as long as its longest reply, so a batch of one
phase, as lockstep's, is the cheapest (taking all that waits, re-asks let the games drift a
phase apart and nearly every call runs as long as a fresh message: three times slower on the
test model, see ``benchmarks/README.md``). Games that move together are then served in exactly
lockstep's batches, while a game whose other seat is slow falls behind without holding the
others up. Every other lane takes all that waits. A call's requests are in ``order``.

Sessions that end are dropped (``end_sessions``) while the policy's lane is idle, between two of
its calls, so no policy is entered from two threads at once.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

from detente.policies.base import Policy, Reply, Request

BATCHERS = "batchers"  # the lane of every batcher


def batch_key(policy: Policy) -> Hashable:
    """Policies that share a batcher (e.g. adapters on one engine) are served in one call."""
    return id(policy.batcher) if policy.batcher is not None else id(policy)


def dispatch(pairs: Sequence[tuple[Policy, Request]]) -> list[Reply]:
    """One call per policy (or shared batcher) for all of its requests; replies in order."""
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for index, (policy, _) in enumerate(pairs):
        groups[batch_key(policy)].append(index)
    replies: list[Reply | None] = [None] * len(pairs)
    for indices in groups.values():
        first_policy = pairs[indices[0]][0]
        if first_policy.batcher is not None:
            answers = first_policy.batcher.act([pairs[i] for i in indices])
        else:
            answers = first_policy.act([pairs[i][1] for i in indices])
        if len(answers) != len(indices):
            raise RuntimeError(
                f"{first_policy.name} returned {len(answers)} replies for {len(indices)}"
            )
        for i, answer in zip(indices, answers, strict=True):
            replies[i] = answer
    return replies  # type: ignore[return-value]


def _lane(policy: Policy) -> Hashable | None:
    """The lane a policy's calls run on; None: it overlaps its own calls."""
    if policy.batcher is not None:
        return BATCHERS
    return None if policy.overlapping else id(policy)


@dataclass(frozen=True)
class _Waiting:
    stage: tuple[int, ...]
    order: tuple[int, ...]
    policy: Policy
    request: Request
    tag: Any


class Scheduler:
    """Requests asked one by one (:meth:`ask`), replies as their calls end (:meth:`replies`)."""

    def __init__(self) -> None:
        self._waiting: dict[Hashable, list[_Waiting]] = {}  # by group, in the order asked
        self._busy: set[Hashable] = set()  # lanes with a call running
        # call → (start order, lane or None, the tags of its requests)
        self._running: dict[Future[list[Reply]], tuple[int, Hashable | None, list[Any]]] = {}
        self._ended: dict[Hashable, list[tuple[Policy, list[str]]]] = defaultdict(list)
        self._order = itertools.count()

    def ask(
        self,
        policy: Policy,
        request: Request,
        tag: Any,
        stage: tuple[int, ...] = (),
        order: tuple[int, ...] = (),
    ) -> None:
        """Send ``request`` to ``policy`` when it can take it; its reply comes back with ``tag``."""
        if _lane(policy) is None:
            self._running[policy.submit([request])] = (next(self._order), None, [tag])
        else:
            waiting = _Waiting(stage, order, policy, request, tag)
            self._waiting.setdefault(batch_key(policy), []).append(waiting)

    def busy(self) -> bool:
        """Whether any request is waiting or in flight."""
        return bool(self._waiting or self._running)

    def replies(self) -> list[tuple[Any, Reply]]:
        """Start a call on every free lane with requests waiting, then wait until calls end:
        the (tag, reply) pairs of every call that ended, in the order the calls started. A
        call's error is raised here."""
        self._start()
        done, _ = wait(self._running, return_when=FIRST_COMPLETED)
        out: list[tuple[Any, Reply]] = []
        for future in sorted(done, key=lambda f: self._running[f][0]):
            _, lane, tags = self._running.pop(future)
            if lane is not None:
                self._busy.discard(lane)
                self._end(lane)
            replies = future.result()
            if len(replies) != len(tags):
                raise RuntimeError(f"a policy returned {len(replies)} replies for {len(tags)}")
            out.extend(zip(tags, replies, strict=True))
        return out

    def end_sessions(self, policy: Policy, session_ids: list[str]) -> None:
        """``policy.end_sessions(session_ids)``, now if its lane is idle, else when its call ends
        (an overlapping policy takes it while its calls are in flight)."""
        lane = _lane(policy)
        if lane in self._busy:
            self._ended[lane].append((policy, session_ids))
        else:
            policy.end_sessions(session_ids)

    def close(self) -> None:
        """Stop: cancel the overlapping policies' calls, drop the waiting requests and wait for
        the lanes' running calls, which a thread cannot be stopped in, so that no policy is
        still called when the caller goes on."""
        for future in self._running:
            future.cancel()
        wait(self._running)
        for lane in list(self._ended):
            self._end(lane)
        self._running.clear()
        self._waiting.clear()

    def _start(self) -> None:
        """A call on every free lane with requests waiting (a batcher's: the lowest stage)."""
        groups: dict[Hashable, list[Hashable]] = defaultdict(list)  # lane → its groups waiting
        for key, waiting in self._waiting.items():
            groups[_lane(waiting[0].policy)].append(key)
        for lane, keys in groups.items():
            if lane in self._busy:
                continue
            key = keys[0]
            taken = self._waiting.pop(key) if lane != BATCHERS else self._lowest_stage(keys)
            taken.sort(key=lambda w: w.order)
            pairs = [(w.policy, w.request) for w in taken]
            self._busy.add(lane)
            future = _on_a_thread(lambda pairs=pairs: dispatch(pairs))
            self._running[future] = (next(self._order), lane, [w.tag for w in taken])

    def _lowest_stage(self, keys: list[Hashable]) -> list[_Waiting]:
        """The waiting requests of the lowest stage, of the first group that has it."""
        low = min(w.stage for key in keys for w in self._waiting[key])
        key = next(k for k in keys if any(w.stage == low for w in self._waiting[k]))
        taken = [w for w in self._waiting[key] if w.stage == low]
        self._waiting[key] = [w for w in self._waiting[key] if w.stage != low]
        if not self._waiting[key]:
            del self._waiting[key]
        return taken

    def _end(self, lane: Hashable) -> None:
        for policy, session_ids in self._ended.pop(lane, []):
            policy.end_sessions(session_ids)


def _on_a_thread(call: Callable[[], list[Reply]]) -> Future[list[Reply]]:
    """``call()`` on a daemon thread of its own (a call that never returns does not hold the
    process at exit); its result, or its error, in the future."""
    future: Future[list[Reply]] = Future()
    future.set_running_or_notify_cancel()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as error:  # handed to the caller's thread
            future.set_exception(error)

    threading.Thread(target=run, name="detente policy call", daemon=True).start()
    return future
