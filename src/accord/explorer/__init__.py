"""The interleaving explorer: find the race before production does.

``accord.explore(workflow)`` runs a workflow of agents (async functions)
under many schedules, exactly one agent moving between two scheduling
points, in virtual time, and reports the first schedule that fails, shrunk,
with a replay token that reproduces it exactly. See docs/explore.md.

The engine is reusable on its own: a :class:`Scheduler` runs agents
(coroutines) under a :class:`Strategy` in virtual time and returns a
:class:`RunResult` with per-agent statistics; :func:`point`,
:func:`sleep`, :func:`wait_for`, :func:`notify` and :func:`join` are the
scheduling points agent code (or a store binding) awaits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._api import explore, explores
from ._markers import think, tool_call

if TYPE_CHECKING:
    from ._explore import (
        STRATEGIES,
        ExploreFailed,
        Explorer,
        ExploreResult,
        Failure,
        World,
        token_matches,
        workflow_name,
    )
    from ._report import timeline_text
    from ._runtime import (
        EPOCH,
        EXTERNAL,
        Agent,
        AgentStats,
        DeadlockInfo,
        Footprint,
        Prune,
        RunResult,
        Scheduler,
        Step,
        Strategy,
        TraceEntry,
        VirtualClock,
        WaitInfo,
        current_agent,
        independent,
        join,
        notify,
        point,
        sleep,
        wait_for,
    )
    from ._strategies import PCT, Exhaustive, Guided, RandomWalk, Replay, ReplayDiverged
    from ._token import decode_token, encode_token

# The rest loads on first use (PEP 562), so that ``import accord``, which
# exports explore, explores, think and tool_call, stays as light as before.
_LAZY = {
    "_explore": (
        "STRATEGIES ExploreFailed ExploreResult Explorer Failure World token_matches workflow_name"
    ),
    "_report": "timeline_text",
    "_runtime": (
        "EPOCH EXTERNAL Agent AgentStats DeadlockInfo Footprint Prune RunResult Scheduler "
        "Step Strategy TraceEntry VirtualClock WaitInfo current_agent independent join "
        "notify point sleep wait_for"
    ),
    "_strategies": "PCT Exhaustive Guided RandomWalk Replay ReplayDiverged",
    "_token": "decode_token encode_token",
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names.split()}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'accord.explorer' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "EPOCH",
    "EXTERNAL",
    "PCT",
    "STRATEGIES",
    "Agent",
    "AgentStats",
    "DeadlockInfo",
    "Exhaustive",
    "ExploreFailed",
    "ExploreResult",
    "Explorer",
    "Failure",
    "Footprint",
    "Guided",
    "Prune",
    "RandomWalk",
    "Replay",
    "ReplayDiverged",
    "RunResult",
    "Scheduler",
    "Step",
    "Strategy",
    "TraceEntry",
    "VirtualClock",
    "WaitInfo",
    "World",
    "current_agent",
    "decode_token",
    "encode_token",
    "explore",
    "explores",
    "independent",
    "join",
    "notify",
    "point",
    "sleep",
    "think",
    "timeline_text",
    "token_matches",
    "tool_call",
    "wait_for",
    "workflow_name",
]
