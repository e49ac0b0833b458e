"""The explorer with accord's store: ``world.store`` and the issue's proofs.

Every schedule gets a fresh :class:`accord.aio.AsyncStore` over the
explorer's backend: each store operation is a scheduling point, time is
virtual, and the check after each schedule is ``accord.check`` on its
history. The seed's lost update is found within 100 schedules for each of
20 seeds; ``write(expect=)`` with a retry and ``update()`` pass 10,000; a
planted write skew is found; failing schedules replay to the same history,
byte for byte. No sleeps and no real time: ``think`` and the backoff are
virtual.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

import accord
from accord.explorer import World, explore

from . import explore_store_flows as flows


def test_world_store_is_an_async_store_over_the_schedule_s_backend() -> None:
    seen: list[Any] = []

    async def workflow(world: World) -> None:
        store = world.store
        assert store is world.store  # one store per schedule
        assert store.sync is None  # no twin: nothing runs in a thread
        seen.append(store)
        await store.session("a").write("k", 1)
        doc = await store.session("b").read("k")
        assert (doc.value, doc.author) == (1, "a")

    result = explore(workflow, schedules=3, seed=1)
    assert result.ok, result.report()
    assert len({id(s) for s in seen}) == 3  # a fresh store in every schedule


def test_the_history_is_the_schedule_s_events_in_virtual_time() -> None:
    async def workflow(world: World) -> None:
        assert world.history() is None  # no store used yet
        s = world.store.session("a")
        await accord.think(2.5)
        await s.write("k", 1)
        events = world.history()
        assert events is not None and [(e["agent"], e["op"], e["key"]) for e in events] == [
            ("a", "write", "k")
        ]
        assert events[0]["time"] == "2026-01-01T00:00:02.500000Z"

    assert explore(workflow, schedules=1, seed=0).ok


def test_without_a_store_world_store_says_what_to_do() -> None:
    async def workflow(world: World) -> None:
        world.store  # noqa: B018

    result = explore(workflow, schedules=1, seed=0, store=None)
    assert result.failure is not None and "store='memory://'" in result.failure.message


@pytest.mark.parametrize("seed", range(20))
def test_the_lost_update_is_found_within_100_schedules(seed: int) -> None:
    result = explore(flows.blind, schedules=100, seed=seed)
    failure = result.failure
    assert failure is not None, f"seed {seed}: no failure in 100 schedules"
    assert failure.kind == "anomaly" and failure.headline == "lost-update"
    assert failure.schedule < 100
    # The report is the seed's picture: both read v1, both wrote on v1.
    report = result.report()
    assert "lost-update on docs/plan.md" in report and "Replay token: x1." in report


@pytest.mark.parametrize("workflow", [flows.expect_retry, flows.updated])
def test_version_checks_pass_10000_schedules(workflow: Any) -> None:
    result = explore(workflow, schedules=10_000, seed=7)
    assert result.ok, result.report()
    assert result.schedules == 10_000


def test_version_checks_pass_every_schedule_of_the_exhaustive_strategy() -> None:
    result = explore(flows.expect_retry, strategy="exhaustive", schedules=10_000)
    assert result.ok, result.report()


def test_update_backs_off_in_virtual_time_with_the_store_s_jitter() -> None:
    slept: list[float] = []

    async def workflow(world: World) -> None:
        store = world.store
        setup = store.session("setup")
        await setup.write("n", 0)

        async def agent(s: Any) -> None:
            await s.update("n", lambda n: n + 1, backoff=1.0)

        await world.run({"a": agent, "b": agent, "c": agent})
        slept.append(world.clock.monotonic())
        assert (await setup.read("n")).value == 3

    result = explore(workflow, schedules=300, seed=3)
    assert result.ok, result.report()
    # Some schedule lost a round and slept: virtual seconds, not real ones.
    assert max(slept) > 0


def test_a_planted_write_skew_is_found() -> None:
    result = explore(flows.write_skew, schedules=200, seed=1)
    failure = result.failure
    assert failure is not None
    assert failure.kind == "exception" and "nobody is on call" in failure.message
    # No lost update: each agent wrote its own key, with expect.
    assert failure.check is None or failure.check.verdict != "anomalies"


def _normalised(history: list[dict[str, Any]] | None) -> bytes:
    assert history
    wall = ("time", "start", "end", "expires")
    rows = [{k: (None if k in wall else v) for k, v in e.items()} for e in history]
    return json.dumps(rows, sort_keys=True).encode()


def test_50_failing_schedules_replay_to_the_same_history_3_times() -> None:
    picked = random.Random(15)
    flows_ = [flows.blind, flows.write_skew]
    checked = 0
    for i in range(50):
        workflow = flows_[i % 2]
        found = explore(workflow, schedules=100, seed=picked.randrange(2**32), shrink=False)
        assert found.failure is not None
        token, first = found.failure.token, found.failure.history
        for _ in range(3):
            again = explore(workflow, replay=token)
            assert again.failure is not None and again.failure.token == token
            assert _normalised(again.failure.history) == _normalised(first)
            checked += 1
    assert checked == 150
