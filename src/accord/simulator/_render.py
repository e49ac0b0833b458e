"""The results for people: a rich table per workload, the choice under it."""

from __future__ import annotations

from typing import Any

from ._api import Point, Sweep

__all__ = ["point_table", "sweep_table"]


def _money(value: float, currency: str) -> str:
    if value == float("inf"):
        return "-"
    return f"{value:.4g} {currency}"


def point_table(point: Point, *, title: str | None = None) -> Any:
    """One row per strategy: goodput, latency, retries, waste, waits, losses, cost."""
    from rich.table import Table

    w = point.workload
    table = Table(
        title=title or f"{w.name}: {w.agents} agents, {w.resources} resource(s), think {w.think}",
        header_style="bold",
    )
    for name, justify in (
        ("strategy", "left"),
        ("goodput /s", "right"),
        ("p50 s", "right"),
        ("p99 s", "right"),
        ("retries", "right"),
        ("wasted s", "right"),
        ("wasted", "right"),
        ("waiting s", "right"),
        ("conflicts", "right"),
        ("lost", "right"),
        ("gave up", "right"),
        ("cost/change", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for s in point.summaries:
        chosen = s.strategy == point.choice.strategy
        table.add_row(
            f"[bold green]{s.strategy} ✓[/]" if chosen else s.strategy,
            f"{s.goodput:.3g}",
            f"{s.p50:.3g}",
            f"{s.p99:.3g}",
            f"{s.retries:.2f}",
            f"{s.wasted:.3g}",
            _money(s.wasted_cost, w.currency),
            f"{s.waiting:.3g}",
            f"{s.conflicts:.3g}",
            f"[red]{s.lost:.3g}[/]" if s.lost else "0",
            f"[red]{s.gave_up:.3g}[/]" if s.gave_up else "0",
            _money(s.cost, w.currency),
            style="" if s.failed == 0 else "red",
        )
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
