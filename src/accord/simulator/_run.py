"""One simulated run: a workload under one strategy, one seed, in virtual time.

The agents are coroutines under the explorer's :class:`Scheduler` (a
seeded random walk picks who moves at every store operation); the store is
accord's real :class:`AsyncStore` over the explorer's in-memory backend, its
sleeps virtual and its jitter seeded, so the strategies run their real code
(``update()``'s backoff, leases, the queue, branches and their merge) and a
run is the same for the same seed. An agent's model call is a virtual sleep
of a drawn think time.

Every change is recorded from its intent (the agent decides to make it) to
the moment it lands; what a change did (retries, wasted thinking, waiting)
is summed in a :class:`RunStats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._core.write import backoff_delay
from ..errors import (
    Conflict,
    Fenced,
    LeaseLost,
    LeaseTimeout,
    NotFound,
    RetriesExhausted,
    UsageError,
)
from ..explorer._backend import ExplorerBackend
from ..explorer._runtime import Scheduler, current_agent, join, sleep
from ..explorer._strategies import RandomWalk
from ._workload import Workload, ZipfPicker

__all__ = ["STRATEGIES", "Change", "RunStats", "run_once"]

STRATEGIES = ("blind", "optimistic", "lease", "queue", "branch")
"""The strategies a workload runs under; ``blind`` (last writer wins) is the baseline."""

KEYS = "r/"
"""The prefix of the resources' keys."""

HOT = "hot"
"""The part of a value that truly conflicting changes all touch."""

RETRIES = 8
"""Attempts an optimistic change makes after its first, as ``update()``'s default."""

BACKOFF = 0.01
MAX_BACKOFF = 2.0


@dataclass(slots=True)
class Change:
    """One change an agent made (or gave up on)."""

    agent: int
    op: int
    key: str
    intent: float
    think: float = 0.0
    landed: float | None = None
    retries: int = 0
    wasted: float = 0.0
    conflicts: int = 0
    lost: bool = False


@dataclass
class RunStats:
    """What one run measured (times in virtual seconds)."""

    strategy: str
    seed: int
    duration: float
    changes: list[Change] = field(default_factory=list)
    lost: int = 0
    conflicts: int = 0
    refused: int = 0
    writer_time: float = 0.0
    synthesis_time: float = 0.0
    steps: int = 0
    operations: int = 0
    outcome: str = "ok"
    error: str | None = None


class _Timed:
    """The explorer's backend with every operation taking ``latency`` virtual seconds.

    A store operation is not free, so a strategy that needs more of them (a
    lease's acquire and release, a fork and a merge) pays for each. A read
    adds its latency to the calling agent's debt; a write sleeps off the
    debt and its own latency before its scheduling point, and so does the
    agent's next think, backoff or apply (:meth:`pay`). Time comes out the
    same as a sleep per operation, with half the scheduler's steps: reads
    take effect at once, which only matters for races of a few
    milliseconds against think times of seconds. Waits and history reads
    cost nothing more than the explorer's point.
    """

    spans_processes = False
    spans_hosts = False
    runs_inline = True
    """As the explorer's backend: the scheduler drives every coroutine, so the
    lease starts no asyncio task of its own."""

    def __init__(self, inner: ExplorerBackend, latency: float) -> None:
        self.inner = inner
        self.latency = latency
        self.operations = 0
        self.url = inner.url
        self.debt: dict[str, float] = {}

    def _owe(self) -> None:
        self.operations += 1
        if self.latency > 0:
            agent = current_agent()
            name = agent.name if agent is not None else ""
            self.debt[name] = self.debt.get(name, 0.0) + self.latency

    def pay(self, seconds: float = 0.0) -> float:
        """``seconds`` plus the calling agent's debt (which is then cleared)."""
        agent = current_agent()
        return seconds + self.debt.pop(agent.name if agent is not None else "", 0.0)

    async def _cost(self) -> None:
        self._owe()
        owed = self.pay()
        if owed > 0:
            await sleep(owed, "store operations")

    async def get(self, key: str) -> Any:
        self._owe()
        return await self.inner.get(key)

    async def read_live(self, key: str) -> Any:
        self._owe()
        return await self.inner.read_live(key)

    async def scan(self, prefix: str, limit: int | None = None) -> Any:
        self._owe()
        return await self.inner.scan(prefix, limit)

    def history(
        self, since: int = 0, key: str | None = None, limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        return self.inner.history(since, key, limit)

    def changes(self, key: str) -> AsyncIterator[dict[str, Any]]:
        return self.inner.changes(key)

    async def revision(self) -> int:
        return await self.inner.revision()

    async def now(self) -> float:
        return await self.inner.now()

    async def txn(self, compares: Any, success: Any, failure: Any = ()) -> Any:
        await self._cost()
        return await self.inner.txn(compares, success, failure)

    async def put_if_version(
        self, put: Any, expect: int, guards: Sequence[Any] = (), failure: Sequence[Any] = ()
    ) -> Any:
        await self._cost()
        return await self.inner.put_if_version(put, expect, guards, failure)

    async def purge_expired(self, prefix: str, before: float) -> int:
        await self._cost()
        return await self.inner.purge_expired(prefix, before)

    async def wait(self, keys: Any, prefixes: Any, since: int, timeout: float | None) -> int:
        return await self.inner.wait(keys, prefixes, since, timeout)

    async def close(self) -> None:
        await self.inner.close()


def _open_store(backend: _Timed, rng: random.Random) -> Any:
    # As the explorer's World opens its store: no sync twin, the virtual
    # clock's sleep (paying the store operations' time owed), seeded jitter
    # (so a seed replays the same run).
    from .._store_async import AsyncStore

    async def pay_and_sleep(seconds: float) -> None:
        await sleep(backend.pay(seconds), "backoff")

    return AsyncStore(backend, sleep=pay_and_sleep, random=rng.random)


async def _read(s: Any, key: str) -> tuple[Any, int]:
    """The value and version of ``key`` (None and 0 while it is absent)."""
    try:
        doc = await s.read(key)
    except NotFound:
        return None, 0
    return doc.value, doc.version


def refused_writes(events: Iterable[dict[str, Any]]) -> int:
    """Writes of the resources that the store refused (``Conflict``), from a
    history: every lost attempt, ``update()``'s own included."""
    return sum(
        1
        for e in events
        if e.get("op") == "write"
        and e.get("outcome") == "conflict"
        and str(e.get("key", "")).startswith(KEYS)
    )


def _cid(c: Change) -> str:
    """The entry a change adds to its key's value."""
    return f"c{c.agent}.{c.op}"


def _change(value: Any, change_id: str, conflicting: bool) -> dict[str, Any]:
    """The value after one change: its own entry, and the hot part if it truly conflicts."""
    new = dict(value) if isinstance(value, dict) else {}
    new[change_id] = 1
    if conflicting:
        new[HOT] = change_id
    return new


class _Run:
    """One run's agents: their plans (drawn from the seed), their strategy's
    code for one change each, and what every change did.

    The methods named after the strategies make one change each; ``agent``
    makes an agent's changes in turn; ``main`` opens the store, spawns the
    agents (and the queue's writers) and, for branches, synthesises at the
    end. ``sleep`` and ``now`` are the run's clock: virtual here, the wall
    clock in a real run (``_real._RealRun``).
    """

    def __init__(self, workload: Workload, strategy: str, seed: int) -> None:
        self.w = workload
        self.strategy = strategy
        self.seed = seed
        self.rng = random.Random(seed)
        self.picker = ZipfPicker(workload.resources, workload.skew)
        self.keys = [f"{KEYS}{i}" for i in range(workload.resources)]
        self.changes: list[Change] = []
        self.stats = RunStats(strategy, seed, 0.0)
        self.store: Any = None
        self.forks: dict[int, dict[str, Any]] = {}
        self.branches: dict[str, list[Any]] = {}
        self.pending: dict[str, list[Change]] = {}
        self.started = 0.0
        self.backend: _Timed | None = None
        # Bounds generous enough never to be the story: a lease outlives any
        # plausible think time; waits outlast the whole run.
        total = workload.think.mean * workload.operations * (workload.agents + 1)
        self.ttl = max(60.0, 20 * workload.think.mean)
        self.patience = max(600.0, 20 * total)
        # Each agent's own draws (its keys, think times, which changes
        # conflict), made up front: they do not depend on the schedule, so
        # every strategy sees the same work for the same seed.
        self.plans: list[list[tuple[str, float, bool]]] = []
        for _ in range(workload.agents):
            plan = []
            for _ in range(workload.operations):
                key = self.keys[self.picker.pick(self.rng)]
                plan.append(
                    (key, workload.think.draw(self.rng), self.rng.random() < workload.conflict)
                )
            self.plans.append(plan)

    async def think(self, seconds: float) -> None:
        if seconds > 0:
            await self.sleep(seconds, "think")

    async def sleep(self, seconds: float, label: str) -> None:
        """Sleep in the run's time: virtual here (with the store operations'
        time owed), real in a validation run."""
        if self.backend is not None:
            seconds = self.backend.pay(seconds)
        if seconds > 0:
            await sleep(seconds, label)

    def now(self) -> float:
        """The run's time, in seconds."""
        agent = current_agent()
        assert agent is not None
        return agent.scheduler.now

    # -- the strategies, one change each ------------------------------------------

    async def blind(self, s: Any, c: Change, cid: str, conflicting: bool) -> None:
        value, _ = await _read(s, c.key)
        await self.think(c.think)
        await s.write(c.key, _change(value, cid, conflicting), force=True)

    async def optimistic(self, s: Any, c: Change, cid: str, conflicting: bool) -> None:
        if not self.w.rethink:
            await self.think(c.think)
            # ``update()`` itself: its reads, its version check, its backoff.
            await s.update(c.key, lambda v: _change(v, cid, conflicting))
            return
        # Read, think, write with the version read. The change depends on
        # the value read (a document), so a lost attempt throws the thought
        # away: back off as update() does, read again, think again.
        for attempt in range(RETRIES + 1):
            value, version = await _read(s, c.key)
            await self.think(c.think)
            try:
                await s.write(c.key, _change(value, cid, conflicting), expect=version)
                return
            except Conflict:
                c.retries += 1
                c.wasted += c.think
                if attempt < RETRIES:
                    # update()'s own backoff: the same delays, the store's jitter.
                    delay = backoff_delay(attempt, BACKOFF, MAX_BACKOFF, self.store.random)
                    await self.store.sleep(delay)
        raise RetriesExhausted(f"{c.key}: gave up after {RETRIES + 1} attempts", key=c.key)

    async def lease(self, s: Any, c: Change, cid: str, conflicting: bool) -> None:
        # The holder reads after the grant: nobody else writes meanwhile, so
        # its thought is never thrown away, unless it outlives the lease.
        for _ in range(RETRIES + 1):
            try:
                lease = await s.acquire(c.key, ttl=self.ttl, wait=self.patience)
            except LeaseTimeout:
                c.retries += 1
                continue
            try:
                value, _ = await _read(s, c.key)
                await self.think(c.think)
                await s.write(c.key, _change(value, cid, conflicting), lease=lease)
            except (Fenced, LeaseLost):
                c.retries += 1
                c.wasted += c.think
                continue
            with contextlib.suppress(LeaseLost):
                await lease.release()
            return
        raise RetriesExhausted(f"{c.key}: no lease after {RETRIES + 1} attempts", key=c.key)

    async def queue(self, s: Any, c: Change, cid: str, conflicting: bool) -> None:
        # The submitter thinks about its change, not the value: the writer
        # applies it to whatever the value is then, so nothing is redone.
        await self.think(c.think)
        request = await s.submit(c.key, {"id": cid, "hot": conflicting})
        while request.pending:
            request = await request.wait(timeout=self.patience)
        if not request.accepted:
            raise RetriesExhausted(f"{c.key}: request {request.id} rejected", key=c.key)

    async def writer(self, key: str, count: int) -> None:
        """The queue's writer of ``key``: decides its ``count`` requests."""
        s = self.store.session(f"writer-{key}")

        def apply(value: Any, change: Any) -> Any:
            return _change(value, change["id"], change["hot"])

        if self.w.apply <= 0:
            await s.serve(key, apply, limit=count, timeout=self.patience, ttl=self.ttl)
            return
        decided = 0
        async for request in s.requests(key, timeout=self.patience, ttl=self.ttl):
            await self.sleep(self.w.apply, "apply")
            self.stats.writer_time += self.w.apply
            await s.accept(
                request, apply(request.base.value if request.base else None, request.change)
            )
            decided += 1
            if decided == count:
                break

    async def branch(self, s: Any, c: Change, cid: str, conflicting: bool) -> None:
        # Each agent works on its own branch of each key it touches: no
        # coordination at all until the synthesis merges them (main, below).
        mine = self.forks.setdefault(c.agent, {})
        b = mine.get(c.key)
        if b is None:
            b = mine[c.key] = await s.fork(c.key)
            self.branches.setdefault(c.key, []).append(b)
        await self.think(c.think)
        await b.write(_change(await b.read(), cid, conflicting))
        self.pending.setdefault(c.key, []).append(c)

    async def synthesise(self) -> None:
        """Merge every key's branches; each conflict costs a synthesis (a model call)."""
        for key in sorted(self.branches):
            branches = self.branches[key]
            merge = await self.store.merge(key, branches, agent="synthesis")
            left = sum(len(conflict.sides) - 1 for conflict in merge.conflicts)
            if left:
                self.stats.conflicts += left
                spent = left * self.w.synthesis_time
                await self.sleep(spent, "synthesis")
                self.stats.synthesis_time += spent
                # The synthesis settles each clash (here: the first side's content).
                merge = await self.store.merge(
                    key,
                    branches,
                    resolve=lambda conflict: next(iter(conflict.sides.values())),
                    agent="synthesis",
                )
            await merge.commit()
            now = self.now()
            for c in self.pending.get(key, []):
                c.landed = now

    async def agent(self, index: int) -> None:
        s = self.store.session(f"agent-{index}")
        run: Callable[[Any, Change, str, bool], Awaitable[None]] = getattr(self, self.strategy)
        for op, (key, think, conflicting) in enumerate(self.plans[index]):
            c = Change(index, op, key, self.now(), think)
            self.changes.append(c)
            try:
                await run(s, c, _cid(c), conflicting)
            except RetriesExhausted:
                continue
            if self.strategy != "branch":
                c.landed = self.now()

    async def main(self) -> None:
        agent = current_agent()
        assert agent is not None
        sched = agent.scheduler
        self.backend = _Timed(ExplorerBackend(sched), self.w.op_latency)
        self.store = _open_store(self.backend, self.rng)
        counts = self.counts()
        # Every key the agents touch exists before they start (a branch forks
        # an existing key); the clock of the run starts after.
        setup = self.store.session("setup")
        for key in sorted(counts):
            await setup.write(key, {}, expect=0)
        self.started = sched.now
        if self.strategy == "queue":
            for key, count in sorted(counts.items()):
                sched.spawn(f"writer-{key}", self.writer(key, count))
        for i in range(self.w.agents):
            sched.spawn(f"agent-{i}", self.agent(i))
        await join()
        if self.strategy == "branch":
            await self.synthesise()

    def counts(self) -> dict[str, int]:
        """How many changes each key gets (a queue writer decides that many)."""
        counts: dict[str, int] = {}
        for plan in self.plans:
            for key, _, _ in plan:
                counts[key] = counts.get(key, 0) + 1
        return counts

    def count_lost(self, values: dict[str, Any]) -> int:
        """Landed changes whose entry is missing from the final ``values`` by key."""
        lost = 0
        for c in self.changes:
            value = values.get(c.key)
            if c.landed is not None and not (isinstance(value, dict) and _cid(c) in value):
                c.lost = True
                lost += 1
        return lost


def _decode(rec: Any) -> Any:
    if rec is None or rec.deleted:
        return None
    from ..records import decode_value

    return decode_value(rec.kind, rec.data)


def run_once(workload: Workload, strategy: str, seed: int) -> RunStats:
    """Run ``workload`` under ``strategy`` with ``seed``; the measurements."""
    if strategy not in STRATEGIES:
        raise UsageError(f"no strategy named {strategy!r}: choose among {', '.join(STRATEGIES)}.")
    run = _Run(workload, strategy, seed)
    steps_bound = 1_000_000
    scheduler = Scheduler(RandomWalk(seed), max_steps=steps_bound)
    result = asyncio.run(scheduler.run(run.main()))
    stats = run.stats
    stats.duration = result.time - run.started
    stats.steps = result.steps
    stats.changes = run.changes
    stats.outcome = result.outcome
    if result.error is not None:
        stats.error = f"{type(result.error).__name__}: {result.error}"
    if run.backend is not None:
        stats.operations = run.backend.operations
        memory = run.backend.inner.memory
        stats.refused = refused_writes(run.backend.inner.events())
        stats.lost = run.count_lost({key: _decode(memory.get(key)) for key in run.counts()})
    return stats
