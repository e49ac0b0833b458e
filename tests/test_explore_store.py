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
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import accord
from accord.explorer import World, explore

from . import explore_store_flows as flows

pytest_plugins = ["pytester"]


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


@pytest.mark.slow  # about 10 s each on a loaded machine; CI runs it (no -m filter)
@pytest.mark.parametrize(
    "workflow",
    [flows.expect_retry, flows.updated, flows.leased, flows.queued, flows.branched],
    ids=["expect-retry", "update", "lease", "queue", "branches"],
)
def test_each_strategy_passes_10000_schedules(workflow: Any) -> None:
    result = explore(workflow, schedules=10_000, seed=7)
    assert result.ok, result.report()
    assert result.schedules == 10_000


def test_the_branches_workflow_without_branches_loses_a_section() -> None:
    result = explore(flows.blind_sections, schedules=100, seed=2)
    assert result.failure is not None and "a section was lost" in result.failure.message


def test_a_holder_paused_past_its_ttl_writing_without_its_lease_is_found() -> None:
    for seed in range(5):
        result = explore(flows.fenced_bug, schedules=200, seed=seed)
        failure = result.failure
        assert failure is not None, f"seed {seed}"
        # Either the store refused the late blind write (another agent's
        # lease was live: LeaseHeld) or it went through and lost an update.
        assert failure.headline in ("LeaseHeld in agent-a", "LeaseHeld in agent-b") or (
            failure.kind == "anomaly"
        ), failure.message
        assert failure.trace[-1].time >= 31 or any(e.time >= 31 for e in failure.trace)


def test_two_leases_in_opposite_order_are_reported_as_a_deadlock_with_the_cycle() -> None:
    result = explore(flows.opposite_order, schedules=300, seed=1)
    failure = result.failure
    assert failure is not None and failure.kind == "deadlock", result.report()
    assert failure.deadlock is not None and failure.deadlock.cycle is not None
    cycle = failure.deadlock.cycle
    assert set(cycle) == {"agent-a", "agent-b"} and cycle[0] == cycle[-1]
    assert {(w.agent, w.waits_for) for w in failure.deadlock.waits} == {
        ("agent-a", "y"),
        ("agent-b", "x"),
    }
    assert "Deadlock on leases: " in failure.message and "lease_all" in failure.message
    assert failure.to_dict()["deadlock"]["cycle"] == list(cycle)


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


# --- the command line and the pytest plugin, on store workflows --------------------------

FLOWS = str(Path(__file__).with_name("explore_store_flows.py"))


def accord_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", "explore", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def test_cli_finds_the_lost_update_draws_it_and_replays_it(tmp_path: Path) -> None:
    drawn = tmp_path / "race.html"
    found = accord_cli(
        f"{FLOWS}:blind",
        "--seed",
        "3",
        "--schedules",
        "100",
        "--timeline",
        str(drawn),
        cwd=tmp_path,
    )
    assert found.returncode == 5, found.stdout + found.stderr
    assert "lost-update on docs/plan.md" in found.stdout
    assert drawn.exists() and "docs/plan.md" in drawn.read_text()
    token = found.stdout.rsplit("Replay token: ", 1)[1].split()[0]
    again = accord_cli(f"{FLOWS}:blind", "--replay", token, "--json", cwd=tmp_path)
    assert again.returncode == 5
    data = json.loads(again.stdout)
    assert data["failure"]["token"] == token and data["failure"]["kind"] == "anomaly"
    assert data["failure"]["history"][-1]["key"] == "docs/plan.md"


def test_cli_json_says_a_guarded_workflow_passed(tmp_path: Path) -> None:
    done = accord_cli(
        f"{FLOWS}:updated", "--schedules", "300", "--seed", "5", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True and data["schedules"] == 300


PLUGIN_STORE_TESTS = """
import accord


@accord.explores(schedules=100, seed=3)
async def test_blind(world):
    setup = world.store.session("setup")
    await setup.write("doc", 0)

    async def agent(s):
        doc = await s.read("doc")
        await accord.think()
        await s.write("doc", doc.value + 1, force=True)

    await world.run({"a": agent, "b": agent})


@accord.explores(schedules=200, seed=3)
async def test_update(world):
    setup = world.store.session("setup")
    await setup.write("doc", 0)

    async def agent(s):
        await accord.think()
        await s.update("doc", lambda n: n + 1)

    await world.run({"a": agent, "b": agent})
    assert (await setup.read("doc")).value == 2
"""


def test_the_plugin_runs_store_workflows_and_replays_their_tokens(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_store_flows=PLUGIN_STORE_TESTS)
    first = pytester.runpytest()
    first.assert_outcomes(passed=1, failed=1)
    out = first.stdout.str()
    assert "lost-update on doc" in out
    assert "pytest test_store_flows.py::test_blind --accord-replay x1." in out
    token = out.rsplit("Replay token: ", 1)[1].split()[0]
    again = pytester.runpytest("--accord-replay", token, "-k", "test_blind")
    again.assert_outcomes(failed=1, deselected=1)
    assert "schedule 1 of 1 failed (replay)" in again.stdout.str()
    fewer = pytester.runpytest("--accord-schedules", "7", "-k", "test_update")
    fewer.assert_outcomes(passed=1, deselected=1)


@pytest.mark.slow  # 10,000 schedules, as the page says
def test_the_docs_picture_runs_as_written() -> None:
    text = (Path(__file__).parent.parent / "docs" / "explore.md").read_text()
    section = text.split("## With accord's store", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/explore.md", "exec"), namespace)
    namespace["test_blind_writes_lose_an_update"]()
    namespace["test_update_does_not"]()


def test_a_keepalive_lease_is_refused_inside_an_exploration_with_what_to_do() -> None:
    async def workflow(world: World) -> None:
        s = world.store.session("a")
        await s.acquire("doc", ttl=30, keepalive=True)

    failure = explore(workflow, schedules=1, seed=0).failure
    assert failure is not None and failure.headline == "UsageError in main"
    assert "keepalive=True renews from an asyncio task" in failure.message
    assert "lease.renew()" in failure.message
