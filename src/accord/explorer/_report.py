"""The text timeline of a schedule: one column per agent, one row per step.

This is the terminal's picture (a failing test's message, the CLI); the
drawn picture (SVG, PNG, HTML) of a schedule's store history is the one
``accord check --timeline`` draws, made by :mod:`accord.history.timeline`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._runtime import TraceEntry

__all__ = ["format_time", "timeline_text"]


def format_time(seconds: float) -> str:
    """Virtual seconds for people: ``0s``, ``1.5s``, ``30s``."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return (text or "0") + "s"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def timeline_text(
    trace: Sequence[TraceEntry],
    agents: Sequence[str],
    *,
    max_rows: int = 300,
    max_width: int = 32,
) -> str:
    """The trace as a table: step, virtual time, then one column per agent.

    A step that preempted an agent (switched away while it could go on) is
    marked ``*``; lines without a step number are what happened without a
    choice (an agent starting to think, blocking, timing out). Longer traces
    keep their first and last rows.
    """
    if not trace:
        return "(no steps)"
    names = list(agents)
    for e in trace:
        if e.agent not in names:
            names.append(e.agent)
    widths = {n: len(n) for n in names}
    for e in trace:
        widths[e.agent] = max(widths[e.agent], min(len(e.text), max_width))
    header = f"{'step':>5}  {'time':>8}  " + "  ".join(n.ljust(widths[n]) for n in names)
    lines = [header.rstrip(), "-" * len(header.rstrip())]
    rows = list(trace)
    skipped = 0
    if len(rows) > max_rows:
        head = max_rows // 2
        skipped = len(rows) - max_rows
        rows = rows[:head] + rows[head + skipped :]
    for i, e in enumerate(rows):
        if skipped and i == max_rows // 2:
            lines.append(f"{'':>5}  {'':>8}  … {skipped} more lines …")
        mark = "*" if e.preempted else " "
        step = f"{e.step}{mark}" if e.step is not None else ""
        cells = []
        for n in names:
            text = _clip(e.text, max_width) if n == e.agent else ""
            if e.step is None and n == e.agent:
                text = _clip("(" + e.text + ")", max_width)
            cells.append(text.ljust(widths[n]))
        lines.append(f"{step:>5}  {format_time(e.time):>8}  " + "  ".join(cells).rstrip())
    if any(e.preempted for e in trace):
        lines.append("* this step preempted an agent that could have gone on")
    return "\n".join(lines)
