"""The explorer's scheduler: one agent moves at a time, virtual time, waits, deadlocks.

Toy agents share Python state guarded by scheduling points; nothing here
uses accord's store, real time or sleeps.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

import accord
from accord.explorer import (
    EPOCH,
    PCT,
    Agent,
    Exhaustive,
    RandomWalk,
    RunResult,
    Scheduler,
    Strategy,
    World,
    current_agent,
    explore,
    join,
    notify,
    point,
    sleep,
    wait_for,
)

from . import explore_toys as toys


def run(main: Any, strategy: Strategy | None = None, **kwargs: Any) -> RunResult:
    """One run of ``main`` (a coroutine) under a scheduler, with a trace."""
    sched = Scheduler(strategy, record=True, **kwargs)
    return asyncio.run(sched.run(main))


def spawn(name: str, coro: Any) -> Agent:
    agent = current_agent()
    assert agent is not None
    return agent.scheduler.spawn(name, coro)


# --- exactly one agent moves between two points --------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_steps_run_alone_and_in_the_chosen_order(seed: int) -> None:
    """What the agents observe is exactly the scheduler's sequence of steps, and an
    agent's code between two points (including awaits of plain coroutines, which do
    not suspend) runs with no other agent in between."""
    log: list[tuple[str, str]] = []
    moving: list[str | None] = [None]

    async def helper() -> int:
        return 1

    async def agent(name: str, steps: int) -> None:
        for i in range(steps):
            await point(f"p{i}", reads={f"k{i % 2}"})
            assert moving[0] is None
            moving[0] = name
            log.append((name, f"p{i}"))
            await helper()
            assert moving[0] == name
            moving[0] = None

    async def main() -> None:
        for name, steps in (("a", 4), ("b", 3), ("c", 5)):
            spawn(name, agent(name, steps))
        await join()

    result = run(main(), RandomWalk(seed))
    assert result.ok
    stepped = [(e.agent, e.text) for e in result.trace if e.step is not None and e.agent != "main"]
    assert stepped == log
    assert result.steps == 4 + 3 + 5 + 1  # and main's step after the join


def test_asyncio_lock_shared_by_agents_excludes_and_resumes() -> None:
    """An asyncio.Lock held across a scheduling point parks the other agent (it awaits
    an asyncio future) until the holder releases it; no schedule deadlocks."""

    async def agent(name: str, lock: asyncio.Lock, inside: list[str], order: list[str]) -> None:
        async with lock:
            inside.append(name)
            assert len(inside) == 1, inside
            await point("in the lock")
            order.append(name)
            inside.remove(name)

    async def main() -> list[str]:
        lock = asyncio.Lock()
        inside: list[str] = []
        order: list[str] = []
        for name in ("a", "b", "c"):
            spawn(name, agent(name, lock, inside, order))
        await join()
        return order

    for seed in range(30):
        result = run(main(), RandomWalk(seed))
        assert result.ok, result.error
        assert sorted(result.agents["main"].result) == ["a", "b", "c"]


def test_asyncio_event_set_by_another_agent_wakes_the_waiter() -> None:
    async def main() -> None:
        event = asyncio.Event()
        seen: list[str] = []

        async def waiter() -> None:
            await event.wait()
            seen.append("woke")

        async def setter() -> None:
            await point("before set")
            event.set()

        spawn("waiter", waiter())
        spawn("setter", setter())
        await join()
        assert seen == ["woke"]

    for seed in range(10):
        assert run(main(), RandomWalk(seed)).ok


def test_a_future_the_loop_completes_is_awaited() -> None:
    """Only when every agent waits for asyncio futures does the driver hand control
    to the event loop (here a callback the loop runs at once)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        loop.call_soon(fut.set_result, 42)

        async def agent() -> int:
            return await fut

        spawn("a", agent())
        results = await join()
        assert results == {"a": 42}

    assert run(main()).ok


def test_a_future_nobody_completes_fails_after_external_timeout() -> None:
    async def main() -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def agent() -> None:
            await fut

        spawn("stuck", agent())
        await join()

    result = run(main(), external_timeout=0)
    assert result.outcome == "failed"
    assert result.failed_agent == "stuck"
    assert isinstance(result.error, accord.UsageError)
    assert "no agent of the exploration completes" in str(result.error)


def test_bare_yield_is_a_point() -> None:
    async def agent(log: list[str], name: str) -> None:
        log.append(name + "1")
        await asyncio.sleep(0)
        log.append(name + "2")

    for seed in range(10):
        log: list[str] = []

        async def main(log: list[str] = log) -> None:
            spawn("a", agent(log, "a"))
            spawn("b", agent(log, "b"))
            await join()

        assert run(main(), RandomWalk(seed)).ok
        assert sorted(log) == ["a1", "a2", "b1", "b2"]


def test_awaiting_something_unschedulable_fails_the_agent_clearly() -> None:
    class Odd:
        def __await__(self) -> Any:
            yield "not a future"

    async def main() -> None:
        async def agent() -> None:
            await Odd()

        spawn("odd", agent())
        await join()

    result = run(main())
    assert result.outcome == "failed" and result.failed_agent == "odd"
    assert "cannot schedule" in str(result.error)
    assert "world.spawn" in str(result.error)


# --- contextvars ---------------------------------------------------------------------


def test_each_agent_knows_itself_and_keeps_its_own_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[tuple[str, str, str]] = []

    async def agent(name: str) -> None:
        var.set(name)
        for _ in range(3):
            await point("p")
            me = current_agent()
            assert me is not None
            seen.append((name, me.name, var.get()))

    async def main() -> None:
        for name in ("a", "b"):
            spawn(name, agent(name))
        await join()
        assert var.get() == "unset"

    for seed in range(10):
        seen.clear()
        assert run(main(), RandomWalk(seed)).ok
        assert all(name == me == value for name, me, value in seen)
    assert current_agent() is None


# --- virtual time --------------------------------------------------------------------


def test_sleeping_costs_virtual_time_only_and_deadlines_order_wakes() -> None:
    times: dict[str, float] = {}

    async def main() -> None:
        sched = current_agent().scheduler  # type: ignore[union-attr]
        clock = sched.clock

        async def slow() -> None:
            await accord.think(3600)
            times["slow"] = clock.monotonic()
            times["slow-wall"] = clock.time()

        async def quick() -> None:
            await sleep(5)
            times["quick"] = clock.monotonic()
            for _ in range(3):
                await point("busy")
            times["quick-after"] = clock.monotonic()

        spawn("slow", slow())
        spawn("quick", quick())
        await join()

    for seed in range(5):
        result = run(main(), RandomWalk(seed))
        assert result.ok
        assert times == {
            "quick": 5.0,
            "quick-after": 5.0,
            "slow": 3600.0,
            "slow-wall": EPOCH + 3600.0,
        }
        assert result.time == 3600.0
        assert result.agents["slow"].slept == 3600.0
        assert result.agents["quick"].slept == 5.0
        assert result.agents["main"].waited == 3600.0
        assert result.agents["quick"].finished == 5.0


def test_time_moves_only_when_every_agent_waits() -> None:
    """A busy agent's 50 points all happen at time 0, whatever the schedule; the
    sleeper wakes at 1 only after the busy one is done."""

    async def main() -> None:
        clock = current_agent().scheduler.clock  # type: ignore[union-attr]
        busy_times: list[float] = []
        woke: list[float] = []

        async def busy() -> None:
            for _ in range(50):
                await point("busy")
                busy_times.append(clock.monotonic())

        async def sleeper() -> None:
            await sleep(1)
            woke.append(clock.monotonic())

        spawn("busy", busy())
        spawn("sleeper", sleeper())
        await join()
        assert busy_times == [0.0] * 50
        assert woke == [1.0]

    for seed in range(20):
        assert run(main(), RandomWalk(seed)).ok


def test_wait_for_is_woken_by_notify_or_times_out() -> None:
    async def main(notifier: bool) -> list[tuple[bool, float]]:
        clock = current_agent().scheduler.clock  # type: ignore[union-attr]
        got: list[tuple[bool, float]] = []

        async def waiter() -> None:
            woken = await wait_for(["k"], prefixes=["jobs/"], timeout=10)
            got.append((woken, clock.monotonic()))

        async def other() -> None:
            await point("unrelated")
            notify(["other-key"])
            if notifier:
                await sleep(4)
                notify(["jobs/17"])

        spawn("waiter", waiter())
        spawn("other", other())
        await join()
        return got

    for seed in range(10):
        assert run(main(True), RandomWalk(seed)).agents["main"].result == [(True, 4.0)]
        assert run(main(False), RandomWalk(seed)).agents["main"].result == [(False, 10.0)]


def test_zero_timeout_polls_and_zero_sleep_is_a_point() -> None:
    async def main() -> float:
        clock = current_agent().scheduler.clock  # type: ignore[union-attr]
        assert await wait_for(["k"], timeout=0) is False
        await sleep(0)
        return clock.monotonic()

    result = run(main())
    assert result.ok and result.agents["main"].result == 0.0


def test_wait_for_with_nothing_to_wait_for_is_refused() -> None:
    async def main() -> None:
        await wait_for()

    result = run(main())
    assert result.outcome == "failed"
    assert "would wait for ever" in str(result.error)


# --- deadlocks, livelocks, failures ----------------------------------------------------


def test_opposite_lock_order_is_a_deadlock_with_its_cycle() -> None:
    result = explore(toys.opposite_locks, strategy="exhaustive", preemptions=1, store=None)
    failure = result.failure
    assert failure is not None and failure.kind == "deadlock"
    assert failure.deadlock is not None
    cycle = failure.deadlock.cycle
    assert cycle in (("agent-a", "agent-b", "agent-a"), ("agent-b", "agent-a", "agent-b"))
    waits = {w.agent: w for w in failure.deadlock.waits}
    assert waits["agent-a"].holders == ("agent-b",)
    assert waits["agent-b"].holders == ("agent-a",)
    assert waits["main"].waits_for == "its agents to finish"
    assert "agent-a -> agent-b -> agent-a" in failure.message or (
        "agent-b -> agent-a -> agent-b" in failure.message
    )
    assert "canonical order" in failure.message
    # The deadlock needs one preemption (after one agent took its first lock).
    assert failure.preemptions == 1


def test_pct_finds_the_deadlock_too() -> None:
    result = explore(toys.opposite_locks, schedules=200, seed=1, store=None)
    assert result.failure is not None and result.failure.kind == "deadlock"


def test_waiting_for_what_never_comes_is_a_deadlock_without_cycle() -> None:
    async def main() -> None:
        async def agent() -> None:
            await wait_for(["never"])

        spawn("a", agent())
        await join()

    result = run(main())
    assert result.outcome == "deadlock"
    assert result.deadlock is not None and result.deadlock.cycle is None
    assert "every agent waits" in result.deadlock.describe()


def test_an_agent_that_never_ends_is_a_livelock() -> None:
    result = explore(toys.spinner, schedules=3, max_steps=50, store=None)
    assert result.failure is not None and result.failure.kind == "livelock"
    assert "50 steps" in result.failure.message


def test_a_failing_agent_fails_the_run_and_the_others_wind_down() -> None:
    cleaned: list[str] = []

    async def main() -> None:
        async def good() -> None:
            try:
                for _ in range(5):
                    await point("work")
                await wait_for(["never"])
            finally:
                await point("cleanup")  # returns at once while winding down
                await sleep(100)
                cleaned.append("good")

        async def bad() -> None:
            await point("about to fail")
            raise ValueError("boom")

        spawn("good", good())
        spawn("bad", bad())
        await join()

    for seed in range(10):
        cleaned.clear()
        result = run(main(), RandomWalk(seed))
        assert result.outcome == "failed"
        assert result.failed_agent == "bad"
        assert isinstance(result.error, ValueError)
        assert result.traceback is not None and "in bad" in result.traceback
        assert "_runtime.py" not in result.traceback
        assert cleaned == ["good"]


def test_join_returns_results_and_agents_may_spawn_agents() -> None:
    async def leaf(n: int) -> int:
        await point("leaf")
        return n * 10

    async def middle() -> dict[str, Any]:
        spawn("leaf-1", leaf(1))
        spawn("leaf-2", leaf(2))
        return await join()

    async def main() -> dict[str, Any]:
        spawn("middle", middle())
        return await join()

    for seed in range(5):
        result = run(main(), RandomWalk(seed))
        assert result.ok
        assert result.agents["main"].result == {"middle": {"leaf-1": 10, "leaf-2": 20}}


def test_spawn_and_run_refuse_misuse() -> None:
    async def agent() -> None:
        await point("p")

    async def main() -> None:
        with pytest.raises(accord.UsageError, match="takes a coroutine, not the function"):
            spawn("a", agent)
        spawn("a", agent())
        with pytest.raises(accord.UsageError, match="Two agents are named 'a'"):
            spawn("a", agent())
        with pytest.raises(accord.UsageError, match="non-empty name"):
            spawn("", agent())
        await join()

    assert run(main()).ok
    sched = Scheduler()
    asyncio.run(sched.run(main()))

    async def again() -> None:
        pass

    with pytest.raises(accord.UsageError, match="runs once"):
        asyncio.run(sched.run(again()))
    with pytest.raises(accord.UsageError, match="max_steps"):
        Scheduler(max_steps=0)


def test_marks_do_nothing_outside_an_exploration() -> None:
    async def production() -> str:
        await accord.think(30)
        await accord.think(5, up_to=60)
        await accord.tool_call("send_email", seconds=2)
        await point("p", writes={"k"})
        notify(["k"])
        return "done"

    assert asyncio.run(production()) == "done"

    async def waits() -> None:
        await wait_for(["k"])

    with pytest.raises(accord.UsageError, match="only inside an agent"):
        asyncio.run(waits())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: accord.think(-1), "seconds >= 0"),
        (lambda: accord.think(float("nan")), "seconds >= 0"),
        (lambda: accord.think(10, up_to=5), "must be >= seconds"),
        (lambda: accord.tool_call(""), "tool's name"),
        (lambda: accord.tool_call("x", seconds=-2), "seconds >= 0"),
    ],
)
def test_marks_check_their_arguments(call: Any, match: str) -> None:
    with pytest.raises(accord.UsageError, match=match):
        asyncio.run(call())


def test_think_up_to_lets_the_explorer_choose_the_duration() -> None:
    async def main() -> float:
        await accord.think(5, up_to=60)
        return current_agent().scheduler.now  # type: ignore[union-attr]

    durations = set()
    for seed in range(20):
        result = run(main(), RandomWalk(seed))
        durations.add(result.agents["main"].result)
        assert len(result.values) == 1
    assert durations == {5.0, 60.0}


def test_a_holder_paused_past_its_ttl_is_found_and_replayed() -> None:
    """The planted fenced-write bug: the explorer picks the 60 s model call that
    outlives the 30 s lease, so the other agent takes the lease and both write."""
    for strategy in ("exhaustive", "pct", "random"):
        result = explore(toys.ttl_lease, strategy=strategy, schedules=200, seed=3, store=None)
        failure = result.failure
        assert failure is not None, strategy
        assert failure.kind == "exception" and isinstance(failure.error, AssertionError)
        assert "wrote with lease token 1, but token 2 is live" in failure.message
        assert "think 60s" in failure.timeline()
        again = explore(toys.ttl_lease, replay=failure.token, store=None)
        assert again.failure is not None
        assert again.failure.timeline() == failure.timeline()


def test_tool_calls_are_ordered_against_each_other() -> None:
    orders: set[tuple[str, ...]] = set()

    async def workflow(world: World) -> None:
        sent: list[str] = []

        async def agent(name: str) -> None:
            await accord.tool_call("send_email", seconds=1)
            sent.append(name)

        world.spawn("a", agent("a"))
        world.spawn("b", agent("b"))
        await world.join()
        orders.add(tuple(sent))

    result = explore(workflow, strategy="exhaustive", preemptions=None, store=None)
    assert result.ok and result.exhausted
    assert orders == {("a", "b"), ("b", "a")}


def test_the_scheduler_alone_gives_per_agent_metrics() -> None:
    """What a simulator built on the scheduler reads: per-agent steps, time slept
    and waited, finish times, and the run's virtual duration."""

    async def main() -> None:
        lock = toys.ToyLock("l")

        async def agent(name: str, think: float) -> None:
            await lock.acquire(name)
            await accord.think(think)
            await lock.release()

        spawn("a", agent("a", 10))
        spawn("b", agent("b", 20))
        await join()

    result = run(main(), PCT(seed=1, depth=2))
    assert result.ok and result.time == 30.0
    a, b = result.agents["a"], result.agents["b"]
    assert (a.slept, b.slept) == (10.0, 20.0)
    if a.finished == 30.0:  # b went first: a waited out b's 20 s
        assert (b.finished, a.waited, b.waited) == (20.0, 20.0, 0.0)
    else:
        assert (a.finished, b.finished, a.waited, b.waited) == (10.0, 30.0, 0.0, 10.0)


def test_exhaustive_runs_are_deterministic_or_refused() -> None:
    counter = [0]

    async def flaky(world: World) -> None:
        counter[0] += 1

        async def agent() -> None:
            await point("p")
            await point("q")

        world.spawn("a", agent())
        if counter[0] % 2:
            world.spawn("b", agent())
        await world.join()

    with pytest.raises(accord.UsageError, match="did not repeat itself"):
        explore(flaky, strategy="exhaustive", store=None)
    assert isinstance(Exhaustive(), Exhaustive)
