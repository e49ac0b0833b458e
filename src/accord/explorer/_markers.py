"""``accord.think()`` and ``accord.tool_call()``: marks in agent code for the explorer.

Both are awaitable and cost nothing outside an exploration (they return at
once), so they can stay in production agent code. Inside one they are
scheduling points: ``think`` stands for a model call (time passes, nothing
shared is touched), ``tool_call`` for an external side effect (ordered
against every other tool call, never against store keys).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import UsageError
from ._context import CURRENT

__all__ = ["think", "tool_call"]


def _fmt(seconds: float) -> str:
    return f"{seconds:g}s"


def _seconds(seconds: Any, what: str) -> float:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(
            f"{what} takes a number of seconds >= 0, not {seconds!r}; pass e.g. 0.5 or 30."
        )
    return value


async def think(seconds: float = 0.0, *, up_to: float | None = None) -> None:
    """Mark a model call (or any slow step that touches nothing shared).

    Inside :func:`accord.explore`, the agent pauses for ``seconds`` of
    virtual time (free: no real time passes) while the others may move.
    With ``up_to``, the explorer chooses the duration, ``seconds`` or
    ``up_to``, as one more scheduling choice: a model call whose latency
    varies, e.g. ``think(5, up_to=60)`` explores the call that outlives a
    30-second lease. Outside an exploration it returns at once.
    """
    low = _seconds(seconds, "think()")
    high = low
    if up_to is not None:
        high = _seconds(up_to, "think(up_to=)")
        if high < low:
            raise UsageError(
                f"think({seconds!r}, up_to={up_to!r}): up_to is the longest the call may "
                "take, so it must be >= seconds."
            )
    agent = CURRENT.get()
    if agent is None or agent.scheduler._closing:
        return
    # Inside an exploration the scheduler is loaded already; outside, the
    # marks never import it.
    from ._runtime import NOTHING, point, sleep

    duration = low
    if high > low:
        duration = (low, high)[agent.scheduler.choose_value(2)]
    if duration > 0:
        await sleep(duration, f"think {_fmt(duration)}")
    else:
        await point("think", footprint=NOTHING)


async def tool_call(name: str, *, seconds: float = 0.0) -> None:
    """Mark an external side effect (a tool call: an e-mail sent, a file written).

    Inside :func:`accord.explore` it is a scheduling point ordered against
    every other tool call (so the explorer tries both orders of two tool
    calls) but independent of store keys; ``seconds`` is how long the call
    takes in virtual time. The explorer sees only the mark, not the effect:
    a race in the external system itself is invisible to it. Outside an
    exploration it returns at once.
    """
    if not isinstance(name, str) or not name:
        raise UsageError(f"tool_call() takes the tool's name (a non-empty string), not {name!r}.")
    duration = _seconds(seconds, "tool_call(seconds=)")
    agent = CURRENT.get()
    if agent is None or agent.scheduler._closing:
        return
    from ._runtime import TOOL_FOOTPRINT, point, sleep

    await point(f"tool {name}", footprint=TOOL_FOOTPRINT)
    if duration > 0:
        await sleep(duration, f"tool {name} {_fmt(duration)}")
