"""The explorer's strategies, replay tokens and shrinking, on toy workflows."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accord
from accord.explorer import (
    PCT,
    World,
    decode_token,
    encode_token,
    explore,
    independent,
    point,
)
from accord.explorer._runtime import Footprint
from accord.explorer._strategies import ReplayDiverged

from . import explore_toys as toys

SEEDS = range(20)


# --- finding the lost update -----------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_pct_finds_the_lost_update_within_100_schedules(seed: int) -> None:
    for workflow in (toys.lost_update, toys.lost_update_no_think):
        result = explore(workflow, schedules=100, seed=seed, store=None)
        assert result.failure is not None, (workflow.__name__, seed)
        assert result.failure.kind == "exception"


@pytest.mark.parametrize("seed", range(5))
def test_random_walk_finds_the_lost_update(seed: int) -> None:
    result = explore(
        toys.lost_update_no_think, schedules=100, strategy="random", seed=seed, store=None
    )
    assert result.failure is not None


@pytest.mark.parametrize("strategy", ["pct", "random"])
@pytest.mark.parametrize("workflow", [toys.optimistic_update, toys.locked_update])
def test_the_safe_variants_pass_every_schedule(strategy: str, workflow: Any) -> None:
    result = explore(workflow, schedules=2000, strategy=strategy, seed=11, store=None)
    assert result.ok, result.report()
    assert result.schedules == 2000


@pytest.mark.parametrize("workflow", [toys.optimistic_update, toys.locked_update])
def test_the_safe_variants_pass_exhaustively(workflow: Any) -> None:
    result = explore(
        workflow, strategy="exhaustive", preemptions=None, schedules=100_000, store=None
    )
    assert result.ok, result.report()
    assert result.exhausted


# --- PCT -----------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_pct_preempts_at_most_depth_minus_one_times(depth: int) -> None:
    """Priorities change only at the depth - 1 change points, so when every agent is
    ready from the start and never waits, a PCT schedule has at most depth - 1
    preemptions (depth 1: the agents run one after the other)."""
    seen = set()
    for seed in range(40):
        result = explore(
            toys.independent_keys, schedules=20, seed=seed, depth=depth, store=None, keep_runs=True
        )
        assert result.ok
        for run in result.runs:
            assert run.preemptions <= depth - 1
            seen.add(run.preemptions)
    assert max(seen) == depth - 1


def test_pct_is_repeatable_from_its_seed() -> None:
    a = explore(toys.independent_keys, schedules=50, seed=5, store=None, keep_runs=True)
    b = explore(toys.independent_keys, schedules=50, seed=5, store=None, keep_runs=True)
    assert [r.decisions for r in a.runs] == [r.decisions for r in b.runs]
    c = explore(toys.independent_keys, schedules=50, seed=6, store=None, keep_runs=True)
    assert [r.decisions for r in a.runs] != [r.decisions for r in c.runs]


def test_pct_refuses_a_bad_depth() -> None:
    with pytest.raises(accord.UsageError, match="depth"):
        PCT(depth=0)
    with pytest.raises(accord.UsageError, match="depth"):
        explore(toys.lost_update, depth=0)


# --- exhaustive ----------------------------------------------------------------------------


def _interleavings(steps: dict[str, int], bound: int | None) -> int:
    """How many orders of the agents' steps have at most ``bound`` preemptions
    (switching away from an agent with steps left), by brute force."""
    names = [n for n, k in steps.items() for _ in range(k)]
    count = 0
    for order in set(itertools.permutations(names)):
        left = dict(steps)
        preemptions = 0
        prev = None
        for name in order:
            if prev is not None and name != prev and left[prev] > 0:
                preemptions += 1
            left[name] -= 1
            prev = name
        if bound is None or preemptions <= bound:
            count += 1
    return count


def _opaque(steps: dict[str, int]) -> Any:
    async def workflow(world: World) -> None:
        async def agent(k: int) -> None:
            for i in range(k):
                await point(f"step {i}")  # unknown footprint: conflicts with everything

        for name, k in steps.items():
            world.spawn(name, agent(k))
        await world.join()

    return workflow


@pytest.mark.parametrize("steps", [{"a": 2, "b": 2}, {"a": 3, "b": 2}, {"a": 2, "b": 1, "c": 2}])
@pytest.mark.parametrize("bound", [0, 1, 2, None])
def test_exhaustive_runs_every_schedule_within_the_bound(
    steps: dict[str, int], bound: int | None
) -> None:
    result = explore(
        _opaque(steps),
        strategy="exhaustive",
        preemptions=bound,
        schedules=100_000,
        store=None,
        keep_runs=True,
    )
    assert result.ok and result.exhausted
    assert result.pruned == 0
    assert result.schedules == _interleavings(steps, bound)
    orders = {tuple(r.decisions) for r in result.runs}
    assert len(orders) == result.schedules
    assert all(bound is None or r.preemptions <= bound for r in result.runs)


def test_exhaustive_stops_at_the_schedules_asked_for() -> None:
    result = explore(
        _opaque({"a": 3, "b": 3}), strategy="exhaustive", preemptions=None, schedules=5, store=None
    )
    assert result.ok and result.schedules == 5 and not result.exhausted


def test_independent_steps_are_explored_once() -> None:
    pruned = explore(
        toys.independent_keys,
        strategy="exhaustive",
        preemptions=None,
        schedules=100_000,
        store=None,
    )
    assert pruned.ok and pruned.exhausted
    assert pruned.schedules == 1
    full = explore(
        toys.independent_keys,
        strategy=accord.explorer.Exhaustive(None, prune=False),
        schedules=100_000,
        store=None,
    )
    assert full.schedules == _interleavings({"x": 2, "y": 2, "z": 2}, None) == 90


def _mixed(outcomes: set[Any]) -> Any:
    """Three agents on keys x and y, some steps shared, some not; each outcome is
    the final state plus every value each agent read (what an order can change)."""

    async def workflow(world: World) -> None:
        data = toys.Shared(x=0, y=0)
        reads: dict[str, list[Any]] = {}

        async def agent(name: str, plan: list[tuple[str, str]]) -> None:
            seen = reads.setdefault(name, [])
            for op, key in plan:
                if op == "r":
                    value, _ = await data.read(key)
                    seen.append((key, value))
                else:
                    await data.write(key, f"{name}{len(seen)}")

        world.spawn("a", agent("a", [("r", "x"), ("w", "x"), ("w", "y")]))
        world.spawn("b", agent("b", [("r", "y"), ("w", "y")]))
        world.spawn("c", agent("c", [("w", "x"), ("r", "y")]))
        await world.join()
        outcomes.add(
            (
                tuple(sorted(data.values.items())),
                tuple(sorted((k, tuple(v)) for k, v in reads.items())),
            )
        )

    return workflow


def test_pruning_loses_no_outcome() -> None:
    """Sleep sets skip only orders equivalent to one already run: without a
    preemption bound, the set of outcomes (final state, every value read) is the
    same with and without pruning, in fewer schedules."""
    with_pruning: set[Any] = set()
    without: set[Any] = set()
    pruned = explore(
        _mixed(with_pruning), strategy="exhaustive", preemptions=None, schedules=100_000, store=None
    )
    full = explore(
        _mixed(without),
        strategy=accord.explorer.Exhaustive(None, prune=False),
        schedules=100_000,
        store=None,
    )
    assert pruned.exhausted and full.exhausted
    assert with_pruning == without
    assert len(without) > 5
    assert pruned.schedules < full.schedules
    assert full.schedules == _interleavings({"a": 3, "b": 2, "c": 2}, None)


def test_footprints_conflict_only_on_shared_keys() -> None:
    r_x = Footprint(reads=frozenset({"x"}))
    w_x = Footprint(writes=frozenset({"x"}))
    w_y = Footprint(writes=frozenset({"y"}))
    scan = Footprint(prefixes=frozenset({"docs/"}))
    assert independent(r_x, r_x)
    assert not independent(r_x, w_x) and not independent(w_x, w_x)
    assert independent(w_x, w_y) and independent(r_x, w_y)
    assert not independent(scan, Footprint(writes=frozenset({"docs/a"})))
    assert independent(scan, w_x)
    assert not independent(None, r_x) and not independent(r_x, None)


def test_exhaustive_finds_the_lost_update_with_one_preemption() -> None:
    result = explore(toys.lost_update_no_think, strategy="exhaustive", preemptions=1, store=None)
    assert result.failure is not None and result.failure.preemptions == 1
    zero = explore(toys.lost_update_no_think, strategy="exhaustive", preemptions=0, store=None)
    assert zero.ok and zero.exhausted


# --- replay tokens ----------------------------------------------------------------------


@given(st.lists(st.integers(min_value=0, max_value=300), max_size=400), st.text(max_size=30))
def test_tokens_round_trip(decisions: list[int], name: str) -> None:
    token = encode_token(decisions, name)
    assert token.startswith("x1.")
    assert token.isascii() and " " not in token
    assert decode_token(token, name) == decisions
    assert decode_token(token) == decisions


def test_tokens_are_short() -> None:
    token = encode_token([1, 1, 1, 2, 2, 1, 1, 1, 1, 2], "lost_update")
    assert len(token) <= 24, token


def test_damaged_or_foreign_tokens_are_refused_clearly() -> None:
    token = encode_token([1, 2, 2, 1], "wf")
    damaged = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    with pytest.raises(accord.UsageError, match="damaged"):
        decode_token(damaged)
    with pytest.raises(accord.UsageError, match="another workflow"):
        decode_token(token, "other")
    with pytest.raises(accord.UsageError, match="version"):
        decode_token("x9." + token[3:])
    with pytest.raises(accord.UsageError, match="not a replay token"):
        decode_token("hello")
    with pytest.raises(accord.UsageError, match="damaged"):
        decode_token("x1.!!!")


def test_replaying_fifty_failing_schedules_gives_the_same_trace_every_time() -> None:
    found = 0
    for seed in range(200):
        result = explore(
            toys.ttl_lease, schedules=50, strategy="random", seed=seed, shrink=False, store=None
        )
        if result.failure is None:
            continue
        found += 1
        first = result.failure.timeline()
        for _ in range(3):
            again = explore(toys.ttl_lease, replay=result.failure.token, store=None)
            assert again.replayed and again.failure is not None
            assert again.failure.timeline() == first
            assert again.failure.token == result.failure.token
        if found == 50:
            break
    assert found == 50


def test_a_token_that_does_not_fit_the_workflow_is_refused() -> None:
    result = explore(toys.lost_update_no_think, seed=1, store=None)
    assert result.failure is not None
    token = result.failure.token
    with pytest.raises(accord.UsageError, match="another workflow"):
        explore(toys.lost_update, replay=token, store=None)

    async def lost_update_no_think(world: World) -> None:  # same name, other agents
        async def agent() -> None:
            await point("only one step")

        world.spawn("solo", agent())
        await world.join()

    with pytest.raises(ReplayDiverged, match="changed since it was recorded"):
        explore(lost_update_no_think, replay=token, store=None, name="lost_update_no_think")


def test_a_replay_of_a_fixed_workflow_passes() -> None:
    result = explore(toys.lost_update_no_think, seed=1, store=None)
    assert result.failure is not None

    async def lost_update_no_think(world: World) -> None:  # the fix: no await in between
        doc = toys.Shared(doc="")

        async def agent(line: str) -> None:
            await point("update doc", writes={"doc"})
            doc.values["doc"] += line
            await point("done", reads={"doc"})

        world.spawn("agent-a", agent("A"))
        world.spawn("agent-b", agent("B"))
        await world.join()
        assert sorted(doc.values["doc"]) == ["A", "B"]

    again = explore(
        lost_update_no_think, replay=result.failure.token, store=None, name="lost_update_no_think"
    )
    assert again.ok and again.replayed
    assert "the failure is gone" in again.summary()


# --- shrinking ------------------------------------------------------------------------------


def test_shrinking_removes_needless_preemptions() -> None:
    """The random walk preempts all the time; the reported schedule keeps only the
    one preemption the lost update needs, and no more steps than found."""
    shrunk_some = False
    for seed in range(10):
        result = explore(toys.lost_update_no_think, strategy="random", seed=seed, store=None)
        f = result.failure
        assert f is not None
        assert f.preemptions == 1
        assert f.steps <= f.found_steps and f.preemptions <= f.found_preemptions
        shrunk_some |= f.found_preemptions > 1
        assert f.reproducible
        assert explore(toys.lost_update_no_think, replay=f.token, store=None).failure is not None
    assert shrunk_some


def test_shrinking_keeps_the_kind_of_failure() -> None:
    result = explore(toys.opposite_locks, strategy="random", seed=2, schedules=500, store=None)
    assert result.failure is not None and result.failure.kind == "deadlock"
    assert result.failure.preemptions == 1


_OPS = st.lists(
    st.tuples(st.sampled_from(["r", "w"]), st.sampled_from(["x", "y", "z"])),
    min_size=1,
    max_size=3,
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_OPS, min_size=2, max_size=3))
def test_pruning_loses_no_outcome_of_any_workflow(plans: list[list[tuple[str, str]]]) -> None:
    """The same as above for generated workflows: agents reading and writing
    keys in any pattern."""

    def workflow_for(outcomes: set[Any]) -> Any:
        async def workflow(world: World) -> None:
            data = toys.Shared(x=0, y=0, z=0)
            reads: dict[str, list[Any]] = {}

            async def agent(name: str, plan: list[tuple[str, str]]) -> None:
                seen = reads.setdefault(name, [])
                for i, (op, key) in enumerate(plan):
                    if op == "r":
                        seen.append((await data.read(key))[0])
                    else:
                        await data.write(key, f"{name}{i}")

            for i, plan in enumerate(plans):
                world.spawn(f"agent-{i}", agent(f"agent-{i}", plan))
            await world.join()
            outcomes.add(
                (
                    tuple(sorted(data.values.items())),
                    tuple(sorted((k, tuple(v)) for k, v in reads.items())),
                )
            )

        return workflow

    pruned_outcomes: set[Any] = set()
    full_outcomes: set[Any] = set()
    pruned = explore(
        workflow_for(pruned_outcomes),
        strategy="exhaustive",
        preemptions=None,
        schedules=100_000,
        store=None,
    )
    full = explore(
        workflow_for(full_outcomes),
        strategy=accord.explorer.Exhaustive(None, prune=False),
        schedules=100_000,
        store=None,
    )
    assert pruned.exhausted and full.exhausted
    assert pruned_outcomes == full_outcomes
    assert pruned.schedules <= full.schedules
