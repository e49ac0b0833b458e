"""The scheduler: agents as coroutines, exactly one moving at a time, in virtual time.

An agent is a coroutine. It runs until it reaches a *scheduling point*: an
awaitable of this module (:func:`point`, :func:`sleep`, :func:`wait_for`,
:func:`join`, the markers ``think`` and ``tool_call``, or an operation of
the explorer's store) that yields a request to the scheduler instead of to
an event loop. The scheduler then decides which agent moves next, asking a
:class:`~accord.explorer.Strategy`, and resumes that one agent alone, so
everything an agent does between two points happens atomically with
respect to the others. Which agent is at a point is known from a context
variable each agent carries in its own :class:`contextvars.Context`.

Why the scheduler drives the coroutines itself (``coro.send``) rather than
running them as asyncio tasks: it is what makes a schedule deterministic
(no event-loop callback can slip in between two points) and it is about
nine times faster (a measured 67,000 against 7,600 two-agent schedules of
ten points per second), which the explorer needs to run thousands of
schedules per test. The driver still runs inside a running asyncio loop,
so agent code may create asyncio locks, events and queues: when an agent
awaits an asyncio future, the agent is parked until the future is done
(checked at every decision, so an ``asyncio.Event`` set by another agent
wakes it deterministically); only when every agent waits for such futures
does the driver hand control to the loop, in real time.

Time is virtual. It starts at 0 and moves only when no agent can move and
some agent sleeps or waits with a deadline: then it jumps to the earliest
deadline. A model call that "thinks" for 30 s, a lease TTL that lapses and
a backoff cost nothing. When every live agent waits for something that
nothing can bring (no deadline, no future the loop could complete), the
run is a deadlock, reported with who waits for whom.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
import traceback
from collections.abc import Callable, Coroutine, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from ..errors import UsageError
from ._context import CURRENT

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "EXTERNAL",
    "Agent",
    "AgentStats",
    "DeadlockInfo",
    "Footprint",
    "Prune",
    "RunResult",
    "Scheduler",
    "Step",
    "Strategy",
    "TraceEntry",
    "VirtualClock",
    "WaitInfo",
    "current_agent",
    "independent",
    "join",
    "notify",
    "point",
    "sleep",
    "wait_for",
]

EXTERNAL = "\x00external"
"""The pseudo-key every ``tool_call`` writes: external side effects are ordered
against each other, never against store keys (a real key has no control
characters, so it cannot collide)."""


# --- steps and their footprints ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Footprint:
    """The shared state one step touches: keys read, keys written, prefixes read.

    Two steps whose footprints do not conflict (neither writes what the
    other reads or writes) commute: running them in either order leaves the
    same state, which is what lets the exhaustive strategy skip one order.
    """

    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    prefixes: frozenset[str] = frozenset()

    def touches(self, keys: frozenset[str]) -> bool:
        """True if this step reads or writes any of ``keys``."""
        if keys & self.writes or keys & self.reads:
            return True
        return any(k.startswith(p) for p in self.prefixes for k in keys)


NOTHING = Footprint()
TOOL_FOOTPRINT = Footprint(writes=frozenset({EXTERNAL}))


def independent(a: Footprint | None, b: Footprint | None) -> bool:
    """True if steps with footprints ``a`` and ``b`` commute. ``None`` (an
    unknown footprint) conflicts with everything."""
    if a is None or b is None:
        return False
    return not (a.touches(b.writes) or b.touches(a.writes))


@dataclass(frozen=True, slots=True)
class Step:
    """What an agent will do when it is next resumed.

    ``kind`` is ``start``, ``point``, ``wake``, ``timeout``, ``resume``
    (an asyncio future it awaited is done) or ``joined``; ``label`` is what
    the timeline prints; ``footprint`` is what it touches (None: unknown,
    which conflicts with everything).
    """

    kind: str
    label: str
    footprint: Footprint | None


START = Step("start", "start", None)
YIELD = Step("point", "yield", None)
JOINED = Step("joined", "all agents done", NOTHING)
RESUMED = Step("resume", "awaited future done", None)


# --- agents ------------------------------------------------------------------------

AgentState = Literal["ready", "blocked", "foreign", "joining", "done"]

# Compared with ``is``: an agent's state is always one of these objects.
READY: Final = "ready"
BLOCKED: Final = "blocked"
FOREIGN: Final = "foreign"
JOINING: Final = "joining"
DONE: Final = "done"


@dataclass(slots=True)
class AgentStats:
    """What one agent did in one run, in virtual time.

    ``steps``: steps it moved; ``slept``: seconds spent in :func:`sleep`
    (``think``, backoffs); ``waited``: seconds spent blocked in
    :func:`wait_for` (lease, queue and change waits) or :func:`join`;
    ``finished``: the virtual time it returned or failed (None if it never
    finished); ``result``: what its coroutine returned.
    """

    steps: int = 0
    slept: float = 0.0
    waited: float = 0.0
    finished: float | None = None
    result: Any = None


class Agent:
    """One agent of a run, as strategies see it.

    ``id`` is its spawn order (the workflow's own coroutine is 0), ``name``
    its name, ``state`` one of ready, blocked, foreign, joining, done, and
    ``step`` what it will do when resumed. Strategies must not change it.
    """

    __slots__ = (
        "_block_kind",
        "_coro",
        "_ctx",
        "_deadline",
        "_future",
        "_holders",
        "_keys",
        "_label",
        "_live_children",
        "_prefixes",
        "_resume",
        "_since",
        "_throw",
        "id",
        "name",
        "parent",
        "scheduler",
        "state",
        "stats",
        "step",
    )

    def __init__(
        self,
        scheduler: Scheduler,
        id: int,
        name: str,
        coro: Coroutine[Any, Any, Any],
        parent: Agent | None,
    ) -> None:
        self.scheduler = scheduler
        self.id = id
        self.name = name
        self.parent = parent
        self.state: AgentState = READY
        self.step: Step = START
        self.stats = AgentStats()
        self._coro = coro
        self._ctx = contextvars.copy_context()
        self._ctx.run(_CURRENT.set, self)
        self._resume: Any = None
        self._throw: BaseException | None = None
        self._deadline: float | None = None
        self._keys: frozenset[str] = frozenset()
        self._prefixes: tuple[str, ...] = ()
        self._holders: Callable[[], Iterable[str]] | None = None
        self._future: asyncio.Future[Any] | None = None
        self._label = ""
        self._since = 0.0
        self._block_kind = ""
        self._live_children = 0

    def __repr__(self) -> str:
        return f"<Agent {self.id} {self.name!r} {self.state}>"


_CURRENT: contextvars.ContextVar[Agent | None] = CURRENT


def current_agent() -> Agent | None:
    """The agent whose code is running, or None outside an exploration."""
    return _CURRENT.get()


# --- the requests an agent yields to the driver -----------------------------------


class _Request:
    """What an awaiting agent hands the driver. Awaiting it suspends the agent
    until the driver resumes it with a value (or throws into it)."""

    __slots__ = ("deadline", "holders", "keys", "kind", "label", "prefixes", "step")

    def __init__(
        self,
        kind: str,
        step: Step | None = None,
        *,
        deadline: float | None = None,
        keys: frozenset[str] = frozenset(),
        prefixes: tuple[str, ...] = (),
        holders: Callable[[], Iterable[str]] | None = None,
        label: str = "",
    ) -> None:
        self.kind = kind
        self.step = step
        self.deadline = deadline
        self.keys = keys
        self.prefixes = prefixes
        self.holders = holders
        self.label = label

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self)


def _running(what: str) -> Agent:
    agent = _CURRENT.get()
    if agent is None:
        raise UsageError(
            f"{what} works only inside an agent run by accord.explore (or a Scheduler): "
            "call it from the workflow or from an agent it spawned."
        )
    if agent.scheduler._closing and agent.scheduler._finished:
        raise UsageError(f"{what} was called after the run ended; nothing can wait any more.")
    return agent


def _check_seconds(seconds: float, what: str) -> float:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(
            f"{what} takes a number of seconds >= 0, not {seconds!r}; pass e.g. 0.5 or 30."
        )
    return value


async def point(
    label: str = "point",
    *,
    reads: Iterable[str] = (),
    writes: Iterable[str] = (),
    prefixes: Iterable[str] = (),
    footprint: Footprint | Literal["unknown"] | None = "unknown",
) -> None:
    """A scheduling point before an access to shared state.

    Put one before every access to state that other agents share and that
    the explorer does not see (the explorer's store has its own points).
    ``reads``/``writes``/``prefixes`` name what the access touches, so the
    exhaustive strategy can skip orders of accesses to different keys; with
    none of them, the footprint is unknown and conflicts with everything.
    Outside an exploration this returns at once and does nothing.
    """
    agent = _CURRENT.get()
    if agent is None or agent.scheduler._closing:
        return
    if footprint == "unknown":
        fp: Footprint | None = None
        if reads or writes or prefixes:
            fp = Footprint(frozenset(reads), frozenset(writes), frozenset(prefixes))
    else:
        fp = footprint
    await _Request("point", Step("point", label, fp))


async def sleep(seconds: float, label: str | None = None) -> None:
    """Sleep ``seconds`` of virtual time (costs no real time).

    The agent is not resumed before the deadline; whether it moves right at
    the deadline or later is a scheduling choice like any other. Must be
    called from an agent of a run.
    """
    seconds = _check_seconds(seconds, "sleep()")
    agent = _running("accord.explorer.sleep()")
    sched = agent.scheduler
    if sched._closing:
        return
    text = label or f"sleep {_fmt_seconds(seconds)}"
    await _Request("sleep", deadline=sched.now + seconds, label=text)


async def wait_for(
    keys: Iterable[str] = (),
    *,
    prefixes: Iterable[str] = (),
    timeout: float | None = None,
    label: str | None = None,
    holders: Callable[[], Iterable[str]] | None = None,
) -> bool:
    """Block until :func:`notify` names one of ``keys`` (or a key under one of
    ``prefixes``), or until ``timeout`` virtual seconds have passed.

    Returns True when notified, False on timeout. Check your condition and
    call this with no scheduling point in between: since only one agent
    moves at a time, nothing can change (and no notification can be missed)
    between the check and the wait. ``holders``, if given, returns the names
    of the agents this one waits for; a deadlock report uses it to name the
    cycle. ``timeout=None`` waits for ever.
    """
    agent = _running("accord.explorer.wait_for()")
    sched = agent.scheduler
    if sched._closing:
        return False
    deadline = None
    if timeout is not None:
        deadline = sched.now + _check_seconds(timeout, "wait_for(timeout=)")
    key_set = frozenset(keys)
    prefix_tuple = tuple(sorted(set(prefixes)))
    if not key_set and not prefix_tuple and deadline is None:
        raise UsageError(
            "wait_for() with no keys, no prefixes and no timeout would wait for ever: "
            "name what to wait for, or pass timeout=."
        )
    text = label or "wait for " + ", ".join(sorted(key_set) + [p + "*" for p in prefix_tuple])
    woken: bool = await _Request(
        "wait",
        deadline=deadline,
        keys=key_set,
        prefixes=prefix_tuple,
        holders=holders,
        label=text,
    )
    return woken


def notify(keys: Iterable[str]) -> None:
    """Wake the agents that :func:`wait_for` one of ``keys`` (call it after a
    change to them). Outside an exploration this does nothing."""
    agent = _CURRENT.get()
    if agent is not None:
        agent.scheduler.notify(keys)


async def join() -> dict[str, Any]:
    """Wait until every agent the calling agent spawned has finished; returns
    their results by name."""
    agent = _running("accord.explorer.join()")
    sched = agent.scheduler
    if agent._live_children and not sched._closing:
        await _Request("join", label="join")
    return {a.name: a.stats.result for a in sched._agents if a.parent is agent}


# --- strategies (the protocol; the strategies themselves are in _strategies) -------


class Prune(Exception):
    """Raised by a strategy to abandon a run that repeats one already explored."""


class Strategy(Protocol):
    """Chooses who moves. One strategy object lives through many runs.

    ``begin(index)`` starts run number ``index`` and returns False when the
    strategy has nothing left to explore. ``pick(ready, current, step)``
    returns one of ``ready`` (at least two agents, in id order; just one
    when ``every_step`` is true); ``current`` is the id of the agent that
    moved last, ``step`` the 1-based number of the step about to run.
    ``pick_value(n)`` chooses one of ``n >= 2`` values (a duration, a
    workflow's own choice). ``end(result)`` closes the run.
    """

    name: str
    every_step: bool

    def begin(self, index: int) -> bool: ...

    def pick(self, ready: Sequence[Agent], current: int | None, step: int) -> Agent: ...

    def pick_value(self, n: int) -> int: ...

    def end(self, result: RunResult) -> None: ...


class _FirstReady:
    """Runs the agent that moved last while it can, else the lowest id."""

    name = "first-ready"
    every_step = False

    def begin(self, index: int) -> bool:
        return True

    def pick(self, ready: Sequence[Agent], current: int | None, step: int) -> Agent:
        for a in ready:
            if a.id == current:
                return a
        return ready[0]

    def pick_value(self, n: int) -> int:
        return 0

    def end(self, result: RunResult) -> None:
        pass


# --- results -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One line of a run's trace.

    ``step`` is the step number for a step an agent moved (None for what
    happened without a choice: starting to sleep, blocking, a timeout);
    ``time`` the virtual time; ``text`` what happened; ``preempted`` names
    the agent this step preempted (it was ready and could have continued).
    """

    step: int | None
    time: float
    agent: str
    text: str
    kind: str
    preempted: str | None = None
    keys: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "step": self.step,
            "time": self.time,
            "agent": self.agent,
            "text": self.text,
            "kind": self.kind,
            "preempted": self.preempted,
            "keys": list(self.keys),
        }


@dataclass(frozen=True, slots=True)
class WaitInfo:
    """One agent stuck in a deadlock: what it waits for and for whom."""

    agent: str
    waits_for: str
    keys: tuple[str, ...]
    holders: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeadlockInfo:
    """Every live agent waits and nothing can wake any of them.

    ``waits`` lists each stuck agent; ``cycle`` is a cycle of agents each
    waiting for the next (the first repeated at the end), when the waits
    name their holders, else None.
    """

    waits: tuple[WaitInfo, ...]
    cycle: tuple[str, ...] | None

    def describe(self) -> str:
        """One paragraph for people and agents."""
        if self.cycle:
            ring = " -> ".join(self.cycle)
            parts = [f"Deadlock: the agents wait for each other in a cycle ({ring})."]
        else:
            parts = ["Deadlock: every agent waits and nothing can wake any of them."]
        for w in self.waits:
            held = f", held by {', '.join(w.holders)}" if w.holders else ""
            parts.append(f"{w.agent} waits for {w.waits_for}{held}.")
        parts.append(
            "Take such resources in one canonical order (lease_all does), or wait with "
            "a timeout and back off."
        )
        return " ".join(parts)


Outcome = Literal["ok", "failed", "deadlock", "livelock", "pruned"]


@dataclass
class RunResult:
    """What one run of a scheduler did.

    ``outcome``: ok, failed (an agent raised: ``error``, ``failed_agent``,
    ``traceback``), deadlock (``deadlock``), livelock (``max_steps`` steps
    without finishing) or pruned (the strategy abandoned a run equivalent
    to one already explored). ``decisions`` are the choices made (agent ids
    and chosen values, in order), what a replay token stores; ``steps`` the
    steps moved, ``choices`` how many had a real choice, ``preemptions``
    how many switched away from an agent that could have continued,
    ``time`` the virtual time at the end, ``agents`` per-agent statistics,
    ``trace`` the timeline (when recorded), ``values`` the value choices
    alone (also in ``decisions``).
    """

    outcome: Outcome
    steps: int
    choices: int
    preemptions: int
    decisions: list[int]
    time: float
    agents: dict[str, AgentStats]
    agent_ids: dict[str, int]
    trace: list[TraceEntry] = field(default_factory=list)
    values: list[int] = field(default_factory=list)
    error: BaseException | None = None
    failed_agent: str | None = None
    traceback: str | None = None
    deadlock: DeadlockInfo | None = None

    @property
    def ok(self) -> bool:
        """True when every agent finished without raising."""
        return self.outcome == "ok"

    def run_lengths(self) -> list[tuple[int, int]]:
        """The steps as runs of one agent: ``[(agent id, steps), ...]`` (needs a trace)."""
        runs: list[tuple[int, int]] = []
        for entry in self.trace:
            if entry.step is None:
                continue
            aid = self.agent_ids[entry.agent]
            if runs and runs[-1][0] == aid:
                runs[-1] = (aid, runs[-1][1] + 1)
            else:
                runs.append((aid, 1))
        return runs


EPOCH = 1_767_225_600.0
"""2026-01-01T00:00:00Z: what a virtual clock's ``time()`` reads at virtual time 0."""


class VirtualClock:
    """The clock of one run, for code that takes a clock.

    ``monotonic()`` is the virtual time in seconds (0 at the start);
    ``time()`` the same as wall-clock seconds since the Unix epoch, starting
    at :data:`EPOCH` so that histories are the same in every replay;
    ``await sleep(s)`` sleeps ``s`` virtual seconds in the calling agent.
    """

    __slots__ = ("_epoch", "_scheduler")

    def __init__(self, scheduler: Scheduler, epoch: float = EPOCH) -> None:
        self._scheduler = scheduler
        self._epoch = epoch

    def monotonic(self) -> float:
        """Virtual seconds since the run started."""
        return self._scheduler.now

    def time(self) -> float:
        """Virtual wall-clock time: :data:`EPOCH` plus :meth:`monotonic`."""
        return self._epoch + self._scheduler.now

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of virtual time in the calling agent."""
        await sleep(seconds)


class _Abandoned(BaseException):
    """Thrown into agents that are still running when a run ends early."""


# --- the driver --------------------------------------------------------------------


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


class Scheduler:
    """Runs agents (coroutines) one at a time under a strategy, in virtual time.

    One scheduler runs once: create it, :meth:`run` the workflow's main
    coroutine (which may :meth:`spawn` more agents and :func:`join` them),
    read the :class:`RunResult`. ``strategy`` chooses who moves at each
    point (default: the agent that moved last keeps going while it can);
    ``max_steps`` bounds a run (more steps is reported as a livelock);
    ``record`` keeps a trace for the timeline; ``start_time`` is the
    virtual time at the start; ``external_timeout`` bounds, in real
    seconds, how long the driver waits when every agent awaits an asyncio
    future that no agent can complete.
    """

    def __init__(
        self,
        strategy: Strategy | None = None,
        *,
        max_steps: int = 10_000,
        record: bool = False,
        start_time: float = 0.0,
        external_timeout: float = 60.0,
    ) -> None:
        if not isinstance(max_steps, int) or max_steps < 1:
            raise UsageError(f"max_steps must be a whole number >= 1, not {max_steps!r}.")
        self.strategy: Strategy = strategy if strategy is not None else _FirstReady()
        self.max_steps = max_steps
        self.record = record
        self.now = _check_seconds(start_time, "start_time")
        self.external_timeout = external_timeout
        self.steps = 0
        self.choices = 0
        self.preemptions = 0
        self.decisions: list[int] = []
        self.values: list[int] = []
        self.trace: list[TraceEntry] = []
        self._agents: list[Agent] = []
        self._names: set[str] = set()
        self._live = 0
        self._foreign = 0
        self._running: Agent | None = None
        self._current: Agent | None = None
        self._failure: tuple[Agent, BaseException, str] | None = None
        self._closing = False
        self._finished = False
        self._started = False
        self.clock = VirtualClock(self)

    # -- building a run ----------------------------------------------------------

    @property
    def agents(self) -> Sequence[Agent]:
        """Every agent spawned so far, in id order."""
        return self._agents

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> Agent:
        """Add an agent running ``coro``.

        The new agent runs at once up to its first scheduling point (code
        before it touches nothing shared, so running it now changes
        nothing), which tells the strategies what its first step touches.
        Called from an agent, that agent becomes its parent (see
        :func:`join`).
        """
        if not inspect.iscoroutine(coro):
            if callable(coro):
                raise UsageError(
                    f"spawn({name!r}, ...) takes a coroutine, not the function: call it, "
                    f"e.g. spawn({name!r}, agent(session)), or pass an async function's result."
                )
            raise UsageError(
                f"spawn({name!r}, ...) takes a coroutine (the result of calling an async "
                f"function), not {type(coro).__name__}."
            )
        if not isinstance(name, str) or not name:
            coro.close()
            raise UsageError(f"An agent needs a non-empty name, not {name!r}.")
        if name in self._names:
            coro.close()
            raise UsageError(f"Two agents are named {name!r}: give each agent its own name.")
        if self._closing:
            coro.close()
            raise UsageError(f"Cannot spawn {name!r}: the run is over.")
        parent = _CURRENT.get()
        if parent is not None and parent.scheduler is not self:
            parent = None
        agent = Agent(self, len(self._agents), name, coro, parent)
        self._agents.append(agent)
        self._names.add(name)
        self._live += 1
        if parent is not None:
            parent._live_children += 1
        if self._started:
            self._advance(agent)
        return agent

    def notify(self, keys: Iterable[str]) -> None:
        """Wake every agent blocked in :func:`wait_for` on one of ``keys``."""
        if self._closing:
            return
        changed = keys if isinstance(keys, (set, frozenset)) else frozenset(keys)
        if not changed:
            return
        for agent in self._agents:
            if agent.state is not BLOCKED or agent._block_kind != "wait":
                continue
            if (agent._keys and not agent._keys.isdisjoint(changed)) or (
                agent._prefixes and any(k.startswith(p) for p in agent._prefixes for k in changed)
            ):
                hit = sorted(
                    k
                    for k in changed
                    if k in agent._keys or any(k.startswith(p) for p in agent._prefixes)
                )
                self._unblock(
                    agent, True, Step("wake", "woken: " + ", ".join(hit), self._wfp(agent))
                )

    def choose_value(self, n: int) -> int:
        """A choice among ``n`` values made by the strategy and recorded in the
        run's decisions (so a replay makes it again). Call it from an agent."""
        if not isinstance(n, int) or n < 1:
            raise UsageError(f"choose_value() needs a number of options >= 1, not {n!r}.")
        if n == 1 or self._closing:
            return 0
        value = self.strategy.pick_value(n)
        if not 0 <= value < n:
            raise UsageError(f"Strategy {self.strategy.name} chose value {value} of {n}.")
        self.decisions.append(value)
        self.values.append(value)
        self.choices += 1
        return value

    # -- running -----------------------------------------------------------------

    async def run(self, main: Coroutine[Any, Any, Any], name: str = "main") -> RunResult:
        """Run ``main`` and every agent it spawns to the end; return the result.

        Exceptions that a strategy raises (other than :class:`Prune`) and
        ``KeyboardInterrupt`` propagate, after every agent was wound down.
        """
        if self._started:
            main.close()
            raise UsageError("A Scheduler runs once: create a new one for the next run.")
        self._started = True
        outcome: Outcome = "ok"
        deadlock: DeadlockInfo | None = None
        try:
            self.spawn(name, main)
            for agent in list(self._agents):
                if agent.state is READY and agent.step is START:
                    self._advance(agent)
            while True:
                if self._failure is not None:
                    outcome = "failed"
                    break
                ready = [a for a in self._agents if a.state is READY]
                if not ready:
                    if self._live == 0:
                        break
                    if self._foreign and self._poll_foreign():
                        continue
                    if self._advance_time():
                        continue
                    if self._foreign:
                        await self._await_foreign()
                        continue
                    deadlock = self._deadlock_info()
                    outcome = "deadlock"
                    break
                if self.steps >= self.max_steps:
                    outcome = "livelock"
                    break
                current = self._current
                cur_id = current.id if current is not None else None
                if len(ready) == 1 and not self.strategy.every_step:
                    chosen = ready[0]
                else:
                    try:
                        chosen = self.strategy.pick(ready, cur_id, self.steps + 1)
                    except Prune:
                        outcome = "pruned"
                        break
                    if len(ready) > 1:
                        self.decisions.append(chosen.id)
                        self.choices += 1
                preempted = None
                if current is not None and chosen is not current and current.state is READY:
                    self.preemptions += 1
                    preempted = current.name
                self.steps += 1
                chosen.stats.steps += 1
                if self.record:
                    step = chosen.step
                    fp = step.footprint
                    keys = tuple(sorted(fp.reads | fp.writes | fp.prefixes)) if fp else ()
                    self.trace.append(
                        TraceEntry(
                            self.steps,
                            self.now,
                            chosen.name,
                            step.label,
                            step.kind,
                            preempted,
                            keys,
                        )
                    )
                self._current = chosen
                self._advance(chosen)
        finally:
            self._closing = True
            self._wind_down()
            self._finished = True
        error = tb = failed = None
        if self._failure is not None:
            agent, exc, tb = self._failure
            error, failed, outcome = exc, agent.name, "failed"
        return RunResult(
            outcome=outcome,
            steps=self.steps,
            choices=self.choices,
            preemptions=self.preemptions,
            decisions=self.decisions,
            time=self.now,
            agents={a.name: a.stats for a in self._agents},
            agent_ids={a.name: a.id for a in self._agents},
            trace=self.trace,
            values=self.values,
            error=error,
            failed_agent=failed,
            traceback=tb,
            deadlock=deadlock,
        )

    def _note(self, agent: Agent, text: str, kind: str, keys: Iterable[str] = ()) -> None:
        if self.record:
            self.trace.append(
                TraceEntry(None, self.now, agent.name, text, kind, None, tuple(sorted(keys)))
            )

    def _advance(self, agent: Agent) -> None:
        """Resume ``agent`` and run it up to its next request (or its end)."""
        value, exc = agent._resume, agent._throw
        agent._resume = agent._throw = None
        outer = self._running
        self._running = agent
        try:
            if exc is not None:
                request = agent._ctx.run(agent._coro.throw, exc)
            else:
                request = agent._ctx.run(agent._coro.send, value)
        except StopIteration as stop:
            self._finish(agent, stop.value)
            return
        except (KeyboardInterrupt, SystemExit):
            self._finish(agent, None)
            raise
        except _Abandoned:
            self._finish(agent, None)
            return
        except BaseException as err:  # an agent's failure is the run's finding
            self._finish(agent, None)
            if self._failure is None and not self._closing:
                self._failure = (agent, err, _format_traceback(err))
            return
        finally:
            self._running = outer
        self._on_request(agent, request)

    def _finish(self, agent: Agent, result: Any) -> None:
        agent.state = DONE
        agent.stats.finished = self.now
        agent.stats.result = result
        self._live -= 1
        parent = agent.parent
        if parent is not None:
            parent._live_children -= 1
            if parent._live_children == 0 and parent.state is JOINING:
                parent.stats.waited += self.now - parent._since
                parent.state = READY
                parent.step = JOINED
                self._note(parent, "joined: all agents done", "joined")

    def _on_request(self, agent: Agent, req: Any) -> None:
        if type(req) is _Request:
            kind = req.kind
            if kind == "point":
                agent.state = READY
                agent.step = req.step  # type: ignore[assignment]
                return
            if kind == "sleep" or kind == "wait":
                deadline = req.deadline
                agent._keys = req.keys
                agent._prefixes = req.prefixes
                agent._holders = req.holders
                agent._label = req.label
                agent._block_kind = kind
                agent._deadline = deadline
                if deadline is not None and deadline <= self.now:
                    # A zero timeout is a poll and a zero sleep a plain point:
                    # the agent stays ready instead of waiting for the others.
                    agent.state = READY
                    agent._resume = False if kind == "wait" else None
                    agent.step = Step("point", req.label, self._wfp(agent))
                    return
                agent.state = BLOCKED
                agent._since = self.now
                self._note(
                    agent,
                    req.label
                    + (f", until {_fmt_seconds(deadline)}" if deadline is not None else ""),
                    "sleep" if kind == "sleep" else "wait",
                    req.keys,
                )
                return
            if kind == "join":
                if agent._live_children == 0:
                    agent.state = READY
                    agent.step = JOINED
                    return
                agent.state = JOINING
                agent._since = self.now
                self._note(agent, "waits for its agents to finish", "wait")
                return
        if req is None:
            # A bare yield (asyncio.sleep(0)): a point that may touch anything.
            agent.state = READY
            agent.step = YIELD
            return
        if _is_future(req):
            # The agent awaits an asyncio future (a Lock, Event or Queue shared
            # with another agent, or real I/O). Like asyncio.Task, reset the
            # flag Future.__await__ sets, and park the agent until it is done.
            req._asyncio_future_blocking = False
            agent.state = FOREIGN
            agent._future = req
            agent._since = self.now
            self._foreign += 1
            self._note(agent, "awaits an asyncio future", "wait")
            return
        agent._throw = UsageError(
            f"Agent {agent.name!r} awaited {req!r}, which the explorer cannot schedule. "
            "Inside an exploration, await the store, accord.think(), accord.tool_call(), "
            "the explorer's sleep/wait_for, or asyncio locks, events and queues shared by "
            "agents; run sub-tasks as agents of their own (world.spawn)."
        )
        agent.state = READY
        agent.step = YIELD

    def _wfp(self, agent: Agent) -> Footprint:
        return Footprint(reads=agent._keys, prefixes=frozenset(agent._prefixes))

    def _unblock(self, agent: Agent, value: Any, step: Step) -> None:
        if agent._block_kind == "sleep":
            agent.stats.slept += self.now - agent._since
        else:
            agent.stats.waited += self.now - agent._since
        agent.state = READY
        agent._resume = value
        agent.step = step
        agent._deadline = None

    def _advance_time(self) -> bool:
        earliest: float | None = None
        for a in self._agents:
            deadline = a._deadline
            if (
                a.state is BLOCKED
                and deadline is not None
                and (earliest is None or deadline < earliest)
            ):
                earliest = deadline
        if earliest is None:
            return False
        if earliest > self.now:
            self.now = earliest
        for a in self._agents:
            if a.state is BLOCKED and a._deadline is not None and a._deadline <= self.now:
                if a._block_kind == "sleep":
                    self._unblock(a, None, Step("wake", f"after {a._label}", NOTHING))
                else:
                    self._note(a, f"timed out: {a._label}", "timeout", a._keys)
                    self._unblock(a, False, Step("timeout", f"timed out: {a._label}", self._wfp(a)))
        return True

    def _poll_foreign(self) -> bool:
        woke = False
        for a in self._agents:
            if a.state is FOREIGN and a._future is not None and a._future.done():
                a.stats.waited += self.now - a._since
                a.state = READY
                a.step = RESUMED
                a._future = None
                self._foreign -= 1
                woke = True
        return woke

    async def _await_foreign(self) -> None:
        import asyncio

        futures = [a._future for a in self._agents if a.state is FOREIGN and a._future]
        done, _ = await asyncio.wait(
            futures, timeout=self.external_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if done:
            return
        for a in self._agents:
            if a.state is FOREIGN:
                a._future = None
                self._foreign -= 1
                a.state = READY
                a.step = YIELD
                a._throw = UsageError(
                    f"Agent {a.name!r} waited {self.external_timeout:g} s of real time for an "
                    "asyncio future that no agent of the exploration completes (real I/O, "
                    "asyncio.sleep, or a task outside the explorer). Use accord.think() or "
                    "the explorer's sleep() for time, and make the other side an agent."
                )

    def _deadlock_info(self) -> DeadlockInfo:
        waits: list[WaitInfo] = []
        graph: dict[str, list[str]] = {}
        for a in self._agents:
            if a.state is JOINING:
                children = [c.name for c in self._agents if c.parent is a and c.state is not DONE]
                waits.append(WaitInfo(a.name, "its agents to finish", (), tuple(children)))
                graph[a.name] = children
            elif a.state is BLOCKED:
                holders: list[str] = []
                if a._holders is not None:
                    try:
                        holders = sorted({str(h) for h in a._holders()} - {""})
                    except Exception as exc:  # a report must not fail on a bad callback
                        holders = [f"<holders() raised {type(exc).__name__}>"]
                graph[a.name] = holders
                done = {b.name for b in self._agents if b.state is DONE}
                shown = [f"{h} (finished)" if h in done else h for h in holders]
                waits.append(WaitInfo(a.name, a._label, tuple(sorted(a._keys)), tuple(shown)))
        return DeadlockInfo(tuple(waits), _find_cycle(graph))

    def _wind_down(self) -> None:
        """Finish every agent still running, deterministically, in id order.

        Each gets ``_Abandoned`` thrown in; its ``finally`` blocks and
        context managers may still await (a lease release): those awaits
        return at once (points resume, waits time out, sleeps end). An agent
        that keeps going for 1,000 more awaits is closed.
        """
        for agent in self._agents:
            if agent.state is DONE:
                continue
            if agent.state is FOREIGN:
                self._foreign -= 1
                agent._future = None
            agent._throw = _Abandoned()
            for _ in range(1000):
                if agent.state is DONE:
                    break
                if agent._throw is None:
                    agent._resume = False if agent._block_kind == "wait" else None
                if agent.state is FOREIGN:
                    agent._throw = _Abandoned()
                    agent._future = None
                    self._foreign -= 1
                agent.state = READY
                self._advance(agent)
            if agent.state is not DONE:
                # It ignored GeneratorExit: nothing more can be done for it.
                with contextlib.suppress(RuntimeError):
                    agent._coro.close()
                self._finish(agent, None)


def _is_future(obj: Any) -> bool:
    """asyncio.isfuture without importing asyncio (accord's import stays light)."""
    return getattr(type(obj), "_asyncio_future_blocking", None) is not None


def _format_traceback(err: BaseException) -> str:
    """The agent's traceback without the driver's own frame (the first one)."""
    tb = err.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(err), err, tb))


def _find_cycle(graph: dict[str, list[str]]) -> tuple[str, ...] | None:
    """A cycle in the wait-for graph (first node repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> tuple[str, ...] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return (*stack[stack.index(nxt) :], nxt)
            if nxt not in state and nxt in graph:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None
