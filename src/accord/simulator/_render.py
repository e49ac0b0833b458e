"""The results for people: a rich table per workload, the choice under it."""

from __future__ import annotations

from typing import Any

from ._api import Point, Sweep

__all__ = ["point_table", "sweep_table"]


def _num(value: float) -> str:
    """Two significant digits below 10, whole numbers above (fits 80 columns)."""
    if value == 0:
        return "0"
    return f"{value:.2g}" if abs(value) < 10 else f"{value:.0f}"


def _money(value: float, currency: str) -> str:
    if value == float("inf"):
        return "-"
    return f"{_num(value)}{currency}" if len(currency) == 1 else f"{_num(value)} {currency}"


def point_table(point: Point, *, title: str | None = None) -> Any:
    """One row per strategy: goodput, latency, retries, waste, waits, losses, cost.

    Columns: goodput (changes landed per second), p50/p99 (seconds from
    intent to landing), retries (lost attempts per change), wasted (the
    price of the model time thrown away, per run), wait (seconds per change
    not spent thinking), confl (merge conflicts left for synthesis, per
    run), lost (updates overwritten per run; and given up, if any), cost
    (model time per landed change). The chosen strategy is ticked.
    """
    from rich import box
    from rich.table import Table

    w = point.workload
    gave_up = any(s.gave_up for s in point.summaries)
    table = Table(
        title=title or f"{w.name}: {w.agents} agents, {w.resources} resource(s), think {w.think}",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("strategy", no_wrap=True)
    for name in ("good/s", "p50 s", "p99 s", "retry", "wasted", "wait s", "confl", "lost"):
        table.add_column(name, justify="right", no_wrap=True)
    if gave_up:
        table.add_column("gave up", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    for s in point.summaries:
        chosen = s.strategy == point.choice.strategy
        cells = [
            f"[bold green]{s.strategy}✓[/]" if chosen else s.strategy,
            _num(s.goodput),
            _num(s.p50),
            _num(s.p99),
            f"{s.retries:.2g}",
            _money(s.wasted_cost, w.currency),
            _num(s.waiting),
            _num(s.conflicts),
            f"[red]{_num(s.lost)}[/]" if s.lost else "0",
        ]
        if gave_up:
            cells.append(f"[red]{_num(s.gave_up)}[/]" if s.gave_up else "0")
        cells.append(_money(s.cost, w.currency))
        table.add_row(*cells, style="" if s.failed == 0 else "red")
    return table


def sweep_table(result: Sweep) -> Any:
    """One row per (agents, conflict): the choice and its cost."""
    from rich.table import Table

    table = Table(title=f"{result.base.name}: sweep, {result.seeds} seeds", header_style="bold")
    table.add_column("agents", justify="right")
    table.add_column("conflict", justify="right")
    table.add_column("choice", style="bold")
    table.add_column("why")
    for (agents, conflict), p in result.points.items():
        table.add_row(str(agents), f"{conflict:g}", p.choice.strategy, p.choice.reason)
    return table
