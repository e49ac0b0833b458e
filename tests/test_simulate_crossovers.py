"""The simulator finds the known crossovers, running every strategy's real code.

- optimistic wins at low conflict (few agents spread over many keys: a lost
  attempt is rare, and nothing else is simpler or faster);
- the queue wins on one hot key with long think times (nobody waits for a
  holder, nobody thinks twice: the writer applies each change in turn);
- branches win when overlap is rare (everyone works alone on one document;
  the merge at synthesis leaves almost nothing to resolve), and stop winning
  when overlap is common.
"""

from __future__ import annotations

import accord
from accord.simulator import Workload

SEEDS = 5


def test_optimistic_wins_at_low_conflict() -> None:
    shape = Workload(
        name="spread",
        agents=4,
        resources=200,
        skew=0.0,
        think="lognormal:10",
        operations=4,
        conflict=0.05,
    )
    result = accord.simulate(shape, seeds=SEEDS)
    assert result.choice.strategy == "optimistic", result.choice
    opt = result.summary("optimistic")
    assert opt.safe and opt.wasted < 0.05 * shape.think.mean * shape.agents * shape.operations
    assert result.summary("blind").lost >= 0  # the baseline runs; it may be lucky here


def test_the_queue_wins_on_one_hot_key_with_long_think_times() -> None:
    shape = Workload(
        name="hot",
        agents=8,
        resources=1,
        skew=0.0,
        think="fixed:20",
        operations=3,
        conflict=0.5,
    )
    result = accord.simulate(shape, seeds=SEEDS)
    assert result.choice.strategy == "queue", result.choice
    queue, opt, lease = (result.summary(n) for n in ("queue", "optimistic", "lease"))
    # Optimistic throws thinking away; a lease serialises the thinking.
    assert opt.wasted > 0 and queue.wasted == 0
    assert queue.goodput > 3 * lease.goodput
    assert result.summary("blind").lost > 0


def test_branches_win_when_overlap_is_rare_and_lose_when_it_is_common() -> None:
    shape = Workload(
        name="document",
        agents=8,
        resources=1,
        skew=0.0,
        think="lognormal:30",
        operations=3,
        conflict=0.02,
        apply=15,
    )
    rare = accord.simulate(shape, seeds=SEEDS)
    assert rare.choice.strategy == "branch", rare.choice
    common = accord.simulate(shape.with_(conflict=0.8), seeds=SEEDS)
    assert common.choice.strategy != "branch", common.choice
    assert common.summary("branch").conflicts > rare.summary("branch").conflicts


def test_a_run_is_the_same_for_the_same_seed() -> None:
    shape = Workload(agents=4, resources=2, think="exp:5", operations=3)
    for strategy in accord.simulator.STRATEGIES:
        a = accord.simulate(shape, strategies=[strategy], seeds=2, seed=7)
        b = accord.simulate(shape, strategies=[strategy], seeds=2, seed=7)
        assert a.summaries == b.summaries, strategy
