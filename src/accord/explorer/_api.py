"""The explorer's public face at ``accord``'s top level: ``explore`` and ``explores``.

This module is light on purpose: ``import accord`` loads it, and the
scheduler, the strategies and the report load only when an exploration
runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from ._explore import Explorer, ExploreResult, World
    from ._runtime import Strategy

__all__ = ["explore", "explores"]


def explore(
    workflow: Callable[[World], Awaitable[Any]],
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
    """Run ``workflow`` under up to ``schedules`` schedules; return what was found.

    ``workflow`` is an async function taking a :class:`~accord.explorer.World`;
    each schedule calls it on a fresh world, in which exactly one agent
    moves between two scheduling points and time is virtual. A schedule
    fails when an agent (or the workflow) raises, when the agents deadlock
    or never finish, or when the checker finds an anomaly in the schedule's
    store history; the exploration stops at the first failure, shrinks it
    (fewer preemptions, then fewer steps) and reports it with a replay token.

    ``strategy`` is ``"pct"`` (the default, with ``depth``), ``"random"``,
    ``"exhaustive"`` (every schedule with at most ``preemptions``
    preemptions, None for no bound; it stops early when all were run) or a
    :class:`~accord.explorer.Strategy`. ``seed`` makes a random strategy
    repeatable (one is chosen, and reported, when None). ``replay`` runs
    exactly the schedule of a token an earlier exploration printed, once.
    ``store`` is ``"memory://"`` (each schedule gets a fresh in-memory
    store in virtual time) or None. ``max_steps`` bounds one schedule (more
    is reported as a livelock); ``shrink`` simplifies a failing schedule
    before reporting it; ``name`` names the workflow in reports and tokens
    (default: its qualified name); ``progress(done, total)`` is called after
    each schedule; ``keep_runs`` keeps every schedule's
    :class:`~accord.explorer.RunResult` in ``result.runs``.

    Returns an :class:`~accord.explorer.ExploreResult`; its
    ``raise_for_failure()`` raises :class:`~accord.explorer.ExploreFailed`
    with the report when a schedule failed. Raises
    :class:`accord.UsageError` for bad arguments or a replay token that
    does not fit the workflow. Called from a running event loop, the
    exploration runs on a loop of its own in a worker thread.
    """
    from ._explore import run_explore

    return run_explore(
        workflow,
        schedules=schedules,
        strategy=strategy,
        depth=depth,
        seed=seed,
        store=store,
        replay=replay,
        preemptions=preemptions,
        max_steps=max_steps,
        shrink=shrink,
        name=name,
        progress=progress,
        keep_runs=keep_runs,
    )


def explores(
    fn: Callable[..., Awaitable[Any]] | None = None,
    *,
    schedules: int = 1000,
    strategy: str | Strategy = "pct",
    depth: int = 3,
    seed: int | None = None,
    store: str | None = "memory://",
    preemptions: int | None = 2,
    max_steps: int = 10_000,
    shrink: bool = True,
) -> Any:
    """Turn an async test of a workflow into an exploration (pytest).

    ::

        @accord.explores(schedules=2000)
        async def test_two_editors(world):
            ...

    The decorated function is the workflow (the world first; any further
    parameters are pytest fixtures). Under pytest it runs through the
    ``accord_explore`` fixture of accord's pytest plugin: a failing schedule
    fails the test with its timeline and the command that replays it, and
    ``--accord-replay TOKEN``, ``--accord-schedules N`` and ``--accord-seed
    S`` apply. ``accord explore module:test_two_editors`` explores it from
    the command line as well. The options are those of :func:`explore`;
    ``@accord.explores`` without parentheses takes the defaults.
    """
    options: dict[str, Any] = {
        "schedules": schedules,
        "strategy": strategy,
        "depth": depth,
        "seed": seed,
        "store": store,
        "preemptions": preemptions,
        "max_steps": max_steps,
        "shrink": shrink,
    }

    def decorate(test_fn: Callable[..., Awaitable[Any]]) -> Callable[..., None]:
        if not inspect.iscoroutinefunction(test_fn):
            raise UsageError(
                "@accord.explores decorates an async function taking the world first: "
                "async def test_x(world): ..."
            )
        sig = inspect.signature(test_fn)
        params = list(sig.parameters.values())
        if not params:
            raise UsageError(
                f"{test_fn.__qualname__} must take the world as its first parameter: "
                f"async def {test_fn.__name__}(world): ..."
            )
        wf_name = test_fn.__qualname__

        def test(accord_explore: Explorer, **fixtures: Any) -> None:
            __tracebackhide__ = True

            async def workflow(world: World) -> Any:
                return await test_fn(world, **fixtures)

            accord_explore(workflow, name=wf_name, **options)

        param = inspect.Parameter("accord_explore", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        test.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=[param, *params[1:]]
        )
        # Not functools.wraps: pytest must see a plain (sync) test whose
        # parameters are fixtures, never the async function behind it.
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(test, attr, getattr(test_fn, attr))
        test.__dict__.update(getattr(test_fn, "__dict__", {}))
        test.__accord_workflow__ = test_fn  # type: ignore[attr-defined]
        test.__accord_options__ = dict(options)  # type: ignore[attr-defined]
        return test

    if fn is not None:
        return decorate(fn)
    return decorate
