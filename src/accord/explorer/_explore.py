"""``accord.explore``: run a workflow under many schedules, report the first failure.

A *workflow* is an async function taking a :class:`World`: it sets up what
it needs, starts agents (``world.spawn`` or ``world.run``), waits for them
(``world.join``) and asserts what must hold afterwards. ``explore`` runs it
once per schedule on a fresh world, each run under the strategy's choices,
and stops at the first schedule that fails: an agent (or the workflow)
raised, the agents deadlocked or never finished, or the checker found an
anomaly in the schedule's store history. That schedule is shrunk (fewer
preemptions, then fewer steps), replayed to confirm it, and reported with
its timeline and a replay token that reproduces it exactly.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import itertools
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import AccordError, Deadlock, UsageError
from ._backend import ExplorerBackend
from ._report import timeline_text
from ._runtime import (
    Agent,
    DeadlockInfo,
    RunResult,
    Scheduler,
    Strategy,
    TraceEntry,
    WaitInfo,
    join,
    sleep,
)
from ._strategies import PCT, Exhaustive, Guided, RandomWalk, Replay
from ._token import decode_token, encode_token

__all__ = [
    "STRATEGIES",
    "ExploreFailed",
    "ExploreResult",
    "Explorer",
    "Failure",
    "World",
    "run_explore",
    "token_matches",
    "workflow_name",
]

if TYPE_CHECKING:
    from .._store_async import AsyncStore

T = TypeVar("T")

JITTER_SEED = 0x5EED
"""The seed of every schedule's store jitter (``update()``'s backoff): the
same numbers in every schedule and every replay. Which agent moves when is
the strategy's to vary; the jitter only sets how long a loser sleeps."""
Workflow = Callable[["World"], Awaitable[Any]]

STRATEGIES = ("pct", "random", "exhaustive")
"""The strategies :func:`explore` knows by name."""

SHRINK_BUDGET = 300
"""How many variants of a failing schedule the shrinker may run."""


class ExploreFailed(AccordError):
    """An exploration found a failing schedule.

    The message is the report: what failed, the timeline of the (shrunk)
    schedule, and how to replay it. ``result`` is the
    :class:`ExploreResult`.
    """

    exit_code = 5


class World:
    """One schedule's world, handed to the workflow.

    ``index`` is the schedule's number, ``clock`` its virtual clock
    (``monotonic()``, ``time()``, ``await sleep(s)``), ``scheduler`` the
    :class:`~accord.explorer.Scheduler` running it. Every schedule gets a
    fresh world: nothing carries over from one to the next except what the
    workflow keeps outside it (which it must not, to stay deterministic).
    """

    def __init__(self, scheduler: Scheduler, index: int, store_url: str | None) -> None:
        self.scheduler = scheduler
        self.index = index
        self.clock = scheduler.clock
        self._store_url = store_url
        self._store: AsyncStore | None = None
        self._backend: ExplorerBackend | None = None

    @property
    def store(self) -> AsyncStore:
        """A fresh :class:`accord.aio.AsyncStore` for this schedule, in memory.

        Every operation of it is a scheduling point (its backend is the
        explorer's), its clock is the virtual clock (TTLs lapse and
        ``update()`` backs off in virtual time), and the jitter of its
        backoff comes from a generator seeded the same way in every
        schedule, so a replay draws the same numbers. It has no sync twin:
        everything runs in the scheduler, no worker thread.
        """
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def _open_store(self) -> AsyncStore:
        if self._store_url is None:
            raise UsageError(
                "This exploration runs without a store (store=None): pass "
                "store='memory://' to give the workflow one."
            )
        from .._store_async import AsyncStore

        self._backend = ExplorerBackend(self.scheduler)
        jitter = random.Random(JITTER_SEED)
        return AsyncStore(self._backend, sleep=sleep, random=jitter.random)

    def history(self) -> list[dict[str, Any]] | None:
        """The schedule's store history as event dicts, oldest first (None when
        the workflow used no store). Reading it is not a scheduling point."""
        if self._backend is None:
            return None
        return self._backend.events()

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> Agent:
        """Start an agent named ``name`` running ``coro`` (an async function's
        result). Its steps interleave with the others' as the strategy decides."""
        return self.scheduler.spawn(name, coro)

    async def join(self) -> dict[str, Any]:
        """Wait until every agent this workflow spawned has finished; returns
        what each returned, by name."""
        return await join()

    async def run(self, agents: Mapping[str, Callable[[Any], Awaitable[Any]]]) -> dict[str, Any]:
        """Spawn one agent per entry, each called with its own session of
        :attr:`store` (``store.session(name)``), and wait for all of them."""
        for name, fn in agents.items():
            if not callable(fn):
                raise UsageError(
                    f"world.run() maps agent names to async functions taking a session; "
                    f"{name!r} maps to {type(fn).__name__}."
                )
            self.spawn(name, fn(self.store.session(name)))  # type: ignore[arg-type]
        return await self.join()

    def choose(self, options: Sequence[T]) -> T:
        """One of ``options``, chosen by the strategy (and recorded, so a replay
        chooses the same): for inputs whose every value should be explored."""
        if not options:
            raise UsageError("world.choose() needs at least one option.")
        return options[self.scheduler.choose_value(len(options))]


@dataclass
class _Options:
    schedules: int
    strategy_name: str
    depth: int
    seed: int | None
    store: str | None
    preemptions: int | None
    max_steps: int
    shrink: bool


@dataclass
class _Outcome:
    index: int
    run: RunResult
    kind: str | None
    signature: tuple[str, ...] | None
    message: str
    history: list[dict[str, Any]] | None = None
    check: Any = None
    deadlock: DeadlockInfo | None = None


@dataclass
class Failure:
    """The failing schedule an exploration found (after shrinking).

    ``kind`` is ``exception`` (an agent or the workflow raised: ``error``,
    ``agent``, ``traceback``), ``anomaly`` (the checker found a race in the
    store history: ``check``), ``deadlock`` (``deadlock``) or ``livelock``;
    ``message`` says what happened; ``token`` replays it; ``schedule`` is
    the number of the schedule that failed first; ``steps`` and
    ``preemptions`` describe the reported schedule, ``found_steps`` and
    ``found_preemptions`` the schedule as first found. ``trace`` is its
    timeline, ``history`` its store history (None without a store).
    ``reproducible`` is False when replaying the token did not fail the
    same way (the workflow is not deterministic).
    """

    kind: str
    message: str
    token: str
    schedule: int
    steps: int
    preemptions: int
    found_steps: int
    found_preemptions: int
    agents: list[str]
    trace: list[TraceEntry]
    run: RunResult
    agent: str | None = None
    error: BaseException | None = None
    traceback: str | None = None
    deadlock: DeadlockInfo | None = None
    history: list[dict[str, Any]] | None = None
    check: Any = None
    reproducible: bool = True

    @property
    def headline(self) -> str:
        """A few words: what failed (``AssertionError in main``, ``lost-update``,
        ``deadlock``, ``livelock``)."""
        if self.kind == "exception" and self.error is not None:
            return f"{type(self.error).__name__} in {self.agent}"
        if self.kind == "anomaly" and self.check is not None:
            return ", ".join(sorted(n for n, c in self.check.counts.items() if c))
        return self.kind

    def timeline(self) -> str:
        """The schedule as a text table: one column per agent, one row per step."""
        return timeline_text(self.trace, self.agents)

    def draw(self, path: str) -> str:
        """Draw the schedule's store history to ``path`` (.svg, .png or .html)
        as ``accord check --timeline`` does; returns the path."""
        if not self.history:
            raise UsageError(
                "This schedule has no store history to draw (its workflow used no store); "
                "its text timeline is failure.timeline()."
            )
        from ..history.timeline import draw

        return draw(self.history, self.check, path)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``accord explore --json`` prints)."""
        return {
            "kind": self.kind,
            "message": self.message,
            "token": self.token,
            "schedule": self.schedule,
            "steps": self.steps,
            "preemptions": self.preemptions,
            "found_steps": self.found_steps,
            "found_preemptions": self.found_preemptions,
            "agent": self.agent,
            "error": type(self.error).__name__ if self.error is not None else None,
            "traceback": self.traceback,
            "deadlock": None
            if self.deadlock is None
            else {
                "cycle": list(self.deadlock.cycle) if self.deadlock.cycle else None,
                "waits": [
                    {
                        "agent": w.agent,
                        "waits_for": w.waits_for,
                        "keys": list(w.keys),
                        "holders": list(w.holders),
                    }
                    for w in self.deadlock.waits
                ],
            },
            "reproducible": self.reproducible,
            "trace": [e.to_dict() for e in self.trace],
            "history": self.history,
            "check": self.check.to_dict() if self.check is not None else None,
        }


@dataclass
class ExploreResult:
    """What :func:`explore` found.

    ``ok`` is True when no schedule failed. ``schedules`` counts the
    schedules run (pruned ones not included: ``pruned`` counts those),
    ``exhausted`` is True when the exhaustive strategy ran out of schedules
    before ``requested``; ``seed`` is the seed used (chosen at random when
    none was given: pass it back to repeat the exploration); ``failure``
    the failing schedule, if any; ``seconds`` the real time taken.
    """

    workflow: str
    strategy: str
    seed: int | None
    depth: int | None
    preemptions: int | None
    schedules: int
    requested: int
    pruned: int
    exhausted: bool
    seconds: float
    replayed: bool
    failure: Failure | None = None
    runs: list[RunResult] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        """True when every schedule passed."""
        return self.failure is None

    @property
    def rate(self) -> float:
        """Schedules per second of real time."""
        return self.schedules / self.seconds if self.seconds > 0 else 0.0

    def _how(self) -> str:
        if self.replayed:
            return "replay"
        parts = [self.strategy]
        if self.strategy == "pct" and self.depth is not None:
            parts.append(f"depth {self.depth}")
        if self.strategy == "exhaustive":
            bound = "unbounded" if self.preemptions is None else f"≤ {self.preemptions}"
            parts.append(f"preemptions {bound}")
        if self.seed is not None and self.strategy in ("pct", "random"):
            parts.append(f"seed {self.seed}")
        return ", ".join(parts)

    def summary(self) -> str:
        """One line: passed or failed, how many schedules, how."""
        if self.failure is not None:
            f = self.failure
            return (
                f"{self.workflow}: schedule {f.schedule + 1} of {self.requested} failed "
                f"({self._how()}): {f.headline}."
            )
        if self.replayed:
            return f"{self.workflow}: the replayed schedule passed (the failure is gone)."
        done = f"{self.schedules:,} schedules"
        if self.exhausted:
            done = f"every schedule ({done}; {self.pruned:,} more skipped as equivalent)"
        return (
            f"{self.workflow}: passed {done} ({self._how()}) in {self.seconds:.2f} s, "
            f"{self.rate:,.0f} schedules/s."
        )

    def report(self, replay_hint: str | None = None) -> str:
        """The full report for people: the summary and, on a failure, what
        happened, the timeline, and how to replay it. ``replay_hint`` is the
        command that replays it, with ``{token}`` where the token goes."""
        lines = ["accord explore: " + self.summary()]
        f = self.failure
        if f is None:
            return lines[0]
        lines.append(f.message)
        if (f.found_steps, f.found_preemptions) != (f.steps, f.preemptions):
            lines.append(
                f"Shrunk from {f.found_steps} steps and {_n(f.found_preemptions, 'preemption')} "
                f"to {f.steps} steps and {_n(f.preemptions, 'preemption')}."
            )
        if not f.reproducible:
            lines.append(
                "WARNING: replaying this schedule did not fail the same way: the workflow is "
                "not deterministic (real time, unseeded randomness, state kept between "
                "schedules), so the token may not reproduce the failure."
            )
        lines += ["", f.timeline(), ""]
        if f.check is not None:
            for a in f.check.anomalies[:5]:
                lines.append(f"{a.name} on {a.key}: {a.explanation}")
            lines.append("")
        if f.traceback:
            lines.append(f"Traceback of {f.agent}:")
            lines.append(f.traceback.rstrip())
            lines.append("")
        hint = replay_hint or (
            f'accord.explore({self.workflow}, replay="{{token}}")  or  '
            f"accord explore --replay {{token}} MODULE:{self.workflow}"
        )
        lines.append("Replay it: " + hint.replace("{token}", f.token))
        lines.append(f"Replay token: {f.token}")
        return "\n".join(lines)

    def raise_for_failure(self, replay_hint: str | None = None) -> None:
        """Raise :class:`ExploreFailed` (whose message is :meth:`report`) if a
        schedule failed; do nothing otherwise."""
        if self.failure is not None:
            raise ExploreFailed(self.report(replay_hint), result=self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``accord explore --json`` prints)."""
        return {
            "ok": self.ok,
            "workflow": self.workflow,
            "strategy": self.strategy,
            "seed": self.seed,
            "depth": self.depth,
            "preemptions": self.preemptions,
            "schedules": self.schedules,
            "requested": self.requested,
            "pruned": self.pruned,
            "exhausted": self.exhausted,
            "replayed": self.replayed,
            "seconds": round(self.seconds, 6),
            "rate": round(self.rate, 1),
            "summary": self.summary(),
            "failure": self.failure.to_dict() if self.failure is not None else None,
        }


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def workflow_name(workflow: Any) -> str:
    """The name a workflow goes by in reports and replay tokens: its qualified name."""
    fn = workflow
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = getattr(fn, "__accord_workflow__", fn)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else type(workflow).__name__


def _make_strategy(o: _Options, strategy: str | Strategy) -> Strategy:
    if not isinstance(strategy, str):
        for attr in ("begin", "pick", "pick_value", "end"):
            if not callable(getattr(strategy, attr, None)):
                raise UsageError(
                    f"strategy must be one of {', '.join(STRATEGIES)} or an object with "
                    f"begin, pick, pick_value and end; {type(strategy).__name__} has no {attr}."
                )
        return strategy
    seed = o.seed if o.seed is not None else 0
    if strategy == "pct":
        return PCT(seed, depth=o.depth)
    if strategy == "random":
        return RandomWalk(seed)
    if strategy == "exhaustive":
        return Exhaustive(o.preemptions)
    raise UsageError(f"Unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}.")


def _lease_deadlock(
    index: int, run: RunResult, exc: Deadlock, history: list[dict[str, Any]] | None
) -> _Outcome:
    """A lease wait that would have closed a cycle (accord's own detection
    refused it with :class:`accord.Deadlock`): reported as a deadlock, with
    the cycle, as the scheduler reports agents stuck for ever."""
    edges = list(getattr(exc, "edges", None) or ())
    waits = tuple(
        WaitInfo(str(e["agent"]), str(e["key"]), (str(e["key"]),), (str(e["blocked_by"]),))
        for e in edges
    )
    ring = [str(a) for a in getattr(exc, "cycle", None) or ()]
    info = DeadlockInfo(waits, (*ring, ring[0]) if ring else None)
    who = f"agent {run.failed_agent!r}" if run.failed_agent != "main" else "the workflow"
    msg = (
        f"Deadlock on leases: {' -> '.join(info.cycle) if info.cycle else 'a cycle'}. "
        f"The store refused the wait of {who} that closed the cycle: {str(exc).strip()}"
    )
    return _Outcome(index, run, "deadlock", ("deadlock",), msg, history, deadlock=info)


def _classify(index: int, run: RunResult, world: World, max_steps: int) -> _Outcome:
    # The store history goes with every finding (the timeline draws it); the
    # checker reads it only when the schedule ran to its end.
    history = world.history()
    if run.outcome == "failed":
        exc = run.error
        assert exc is not None
        if isinstance(exc, Deadlock):
            return _lease_deadlock(index, run, exc, history)
        cls = type(exc)
        sig = ("exception", f"{cls.__module__}.{cls.__qualname__}")
        text = str(exc).strip()
        who = "The workflow" if run.failed_agent == "main" else f"Agent {run.failed_agent!r}"
        msg = f"{who} raised {cls.__name__}" + (f": {text}" if text else ".")
        return _Outcome(index, run, "exception", sig, msg, history)
    if run.outcome == "deadlock":
        assert run.deadlock is not None
        return _Outcome(index, run, "deadlock", ("deadlock",), run.deadlock.describe(), history)
    if run.outcome == "livelock":
        msg = (
            f"The schedule did not finish within {max_steps:,} steps: agents keep going "
            "without finishing (a livelock, e.g. retrying for ever against each other), or "
            "the workflow needs more steps than that (pass max_steps=)."
        )
        return _Outcome(index, run, "livelock", ("livelock",), msg, history)
    if run.outcome == "pruned":
        return _Outcome(index, run, None, None, "pruned")
    if history:
        from ..history.check import check

        result = check(history)
        if result.verdict == "anomalies":
            names = sorted(n for n, c in result.counts.items() if c)
            first = result.anomalies[0] if result.anomalies else None
            msg = "The checker found " + ", ".join(names) + " in the schedule's history"
            if first is not None:
                msg += f": {first.explanation}"
            return _Outcome(index, run, "anomaly", ("anomaly", *names), msg, history, result)
        return _Outcome(index, run, None, None, "ok", history, result)
    return _Outcome(index, run, None, None, "ok", history)


YIELD_EVERY = 16
"""Schedules between two turns of the event loop (where a Ctrl-C lands)."""
_RUNS = itertools.count()


async def _run_one(
    workflow: Workflow,
    strategy: Strategy,
    index: int,
    o: _Options,
    record: bool,
) -> _Outcome | None:
    if next(_RUNS) % YIELD_EVERY == 0:
        # A schedule never waits on the event loop, so without this an
        # exploration would never let it run: a Ctrl-C (asyncio.run cancels
        # its main task) would wait for the last schedule.
        await asyncio.sleep(0)
    if not strategy.begin(index):
        return None
    sched = Scheduler(strategy, max_steps=o.max_steps, record=record)
    world = World(sched, index, o.store)
    main = workflow(world)
    if not inspect.iscoroutine(main):
        if inspect.isawaitable(main):

            async def _await(aw: Awaitable[Any] = main) -> Any:
                return await aw

            main = _await()
        else:
            raise UsageError(
                "The workflow must be an async function taking the world "
                "(async def workflow(world): ...); calling it returned "
                f"{type(main).__name__}."
            )
    # The cyclic collector paused for one schedule: a schedule allocates a
    # few thousand short-lived objects (some in cycles: agents and their
    # scheduler), and collections in the middle of it cost about a seventh
    # of the run; re-enabled after, it collects the schedule's cycles once.
    paused = gc.isenabled()
    gc.disable()
    try:
        run = await sched.run(main, name="main")
        strategy.end(run)
        return _classify(index, run, world, o.max_steps)
    finally:
        if paused:
            gc.enable()


def _key(out: _Outcome) -> tuple[int, int]:
    return (out.run.preemptions, out.run.steps)


async def _shrink(workflow: Workflow, o: _Options, best: _Outcome) -> _Outcome:
    """Look for a simpler schedule that fails the same way.

    A schedule is a list of runs (one agent moving several steps in a row).
    Candidates drop one run (that agent's steps move to its next run or to
    wherever it can go on) or halve it; a candidate that fails with the same
    signature and fewer preemptions, or as many and fewer steps, replaces
    the best, and the search starts over from it.
    """
    tries = 0
    improved = True
    while improved and tries < SHRINK_BUDGET:
        improved = False
        runs = best.run.run_lengths()
        candidates: list[list[tuple[int, int]]] = []
        for i in range(len(runs)):
            candidates.append(runs[:i] + runs[i + 1 :])
        for i, (aid, n) in enumerate(runs):
            if n > 1:
                candidates.append([*runs[:i], (aid, n // 2), *runs[i + 1 :]])
        for plan in candidates:
            if tries >= SHRINK_BUDGET:
                break
            tries += 1
            out = await _run_one(workflow, Guided(plan, best.run.values), best.index, o, True)
            if out is not None and out.signature == best.signature and _key(out) < _key(best):
                best = out
                improved = True
                break
    return best


async def _failure(
    workflow: Workflow, name: str, o: _Options, found: _Outcome, shrink: bool
) -> Failure:
    replayed = await _run_one(workflow, Replay(found.run.decisions), found.index, o, True)
    assert replayed is not None
    reproducible = replayed.signature == found.signature
    best = replayed if reproducible else found
    if shrink and reproducible:
        best = await _shrink(workflow, o, replayed)
        if best is not replayed:
            confirm = await _run_one(workflow, Replay(best.run.decisions), found.index, o, True)
            assert confirm is not None
            if confirm.signature == best.signature:
                best = confirm
            else:
                reproducible = False
    run = best.run
    assert best.kind is not None
    return Failure(
        kind=best.kind,
        message=best.message,
        token=encode_token(run.decisions, name),
        schedule=found.index,
        steps=run.steps,
        preemptions=run.preemptions,
        found_steps=found.run.steps,
        found_preemptions=found.run.preemptions,
        agents=list(run.agent_ids),
        trace=run.trace,
        run=run,
        agent=run.failed_agent,
        error=run.error,
        traceback=run.traceback,
        deadlock=best.deadlock or run.deadlock,
        history=best.history,
        check=best.check,
        reproducible=reproducible,
    )


async def _explore(
    workflow: Workflow,
    name: str,
    o: _Options,
    strategy: Strategy,
    replayed: bool,
    progress: Callable[[int, int], None] | None,
    keep_runs: bool,
) -> ExploreResult:
    started = time.perf_counter()
    runs = pruned = index = 0
    found: _Outcome | None = None
    kept: list[RunResult] = []
    while runs < o.schedules:
        out = await _run_one(workflow, strategy, index, o, record=replayed)
        if out is None:
            break
        index += 1
        if out.run.outcome == "pruned":
            pruned += 1
            continue
        runs += 1
        if keep_runs:
            kept.append(out.run)
        if progress is not None:
            progress(runs, o.schedules)
        if out.kind is not None:
            found = out
            break
    failure = None
    if found is not None:
        if replayed:
            failure = await _failure(workflow, name, o, found, shrink=False)
        else:
            failure = await _failure(workflow, name, o, found, shrink=o.shrink)
    exhausted = bool(getattr(strategy, "exhausted", False)) and found is None
    return ExploreResult(
        workflow=name,
        strategy=o.strategy_name,
        seed=o.seed,
        depth=o.depth if o.strategy_name == "pct" else None,
        preemptions=o.preemptions if o.strategy_name == "exhaustive" else None,
        schedules=runs,
        requested=o.schedules,
        pruned=pruned,
        exhausted=exhausted,
        seconds=time.perf_counter() - started,
        replayed=replayed,
        failure=failure,
        runs=kept,
    )


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{what} must be a whole number >= 1, not {value!r}.")
    return value


def run_explore(
    workflow: Workflow,
    *,
    schedules: int = 1000,
    strategy: str | Strategy = "pct",
    depth: int = 3,
    seed: int | None = None,
    store: str | None = "memory://",
    replay: str | None = None,
    preemptions: int | None = 2,
    max_steps: int = 10_000,
    shrink: bool = True,
    name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    keep_runs: bool = False,
) -> ExploreResult:
    """The implementation of :func:`accord.explore` (see there)."""
    if not callable(workflow):
        raise UsageError(
            "explore() takes the workflow: an async function taking the world "
            f"(async def workflow(world): ...), not {type(workflow).__name__}."
        )
    _positive(schedules, "schedules")
    _positive(max_steps, "max_steps")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise UsageError(f"depth must be a whole number >= 1, not {depth!r}.")
    if preemptions is not None and (
        isinstance(preemptions, bool) or not isinstance(preemptions, int) or preemptions < 0
    ):
        raise UsageError(
            f"preemptions must be a whole number >= 0, or None for no bound, not {preemptions!r}."
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise UsageError(f"seed must be a whole number or None, not {seed!r}.")
    if store is not None and store != "memory://":
        raise UsageError(
            f"The explorer runs every schedule on its own in-memory store in virtual time, "
            f"so store must be 'memory://' (or None for no store), not {store!r}."
        )
    wf_name = name or workflow_name(workflow)
    strategy_name = strategy if isinstance(strategy, str) else getattr(strategy, "name", "custom")
    if isinstance(strategy, str) and strategy not in STRATEGIES:
        raise UsageError(f"Unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}.")
    if seed is None and strategy_name in ("pct", "random") and replay is None:
        seed = secrets.randbits(32)
    o = _Options(schedules, str(strategy_name), depth, seed, store, preemptions, max_steps, shrink)
    if replay is not None:
        chosen: Strategy = Replay(decode_token(replay, wf_name))
        o.schedules = 1
    else:
        chosen = _make_strategy(o, strategy)

    coro = _explore(workflow, wf_name, o, chosen, replay is not None, progress, keep_runs)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_loop = False
    else:
        in_loop = True
    if not in_loop:
        return asyncio.run(coro)
    # Called from a coroutine: the exploration gets an event loop of its own
    # in a worker thread rather than blocking (or re-entering) the caller's.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="accord-explore") as pool:
        return pool.submit(asyncio.run, coro).result()


class Explorer:
    """What the ``accord_explore`` pytest fixture gives a test.

    ``accord_explore(workflow, **options)`` runs :func:`explore` with the
    command line's ``--accord-replay``, ``--accord-schedules`` and
    ``--accord-seed`` applied, returns the :class:`ExploreResult`, and
    raises :class:`ExploreFailed` (the test fails with the report and the
    replay command) when a schedule failed.
    """

    def __init__(
        self,
        *,
        replay: str | None = None,
        schedules: int | None = None,
        seed: int | None = None,
        replay_hint: str | None = None,
        skip: Callable[[str], None] | None = None,
    ) -> None:
        self.replay = replay
        self.schedules = schedules
        self.seed = seed
        self.replay_hint = replay_hint
        self.skip = skip

    def __call__(self, workflow: Workflow, **options: Any) -> ExploreResult:
        name = options.pop("name", None) or workflow_name(workflow)
        if self.replay is not None:
            decode_token(self.replay)
            if not token_matches(self.replay, name) and self.skip is not None:
                self.skip(f"--accord-replay names another workflow than {name}")
            options["replay"] = self.replay
        if self.schedules is not None:
            options["schedules"] = self.schedules
        if self.seed is not None:
            options["seed"] = self.seed
        result = run_explore(workflow, name=name, **options)
        result.raise_for_failure(self.replay_hint)
        return result


def token_matches(token: str, workflow: str) -> bool:
    """True if ``token`` was recorded by the workflow named ``workflow``."""
    decode_token(token)
    try:
        decode_token(token, workflow)
    except UsageError:
        return False
    return True
