"""The plan for people: a rich table, then the violations."""

from __future__ import annotations

from typing import Any

from ..policy.manifest import Resource
from ._plan import Plan, PlanRow

WIDE = 130
"""Consoles at least this wide get one table row per resource; narrower
ones get one block per resource (the same fields, stacked)."""


def plan_table(plan: Plan, *, title: str | None = None, wide: bool = True) -> Any:
    """The plan as a rich Table.

    ``wide``: one row per resource with the columns resource, readers,
    writers, access, strategy, why, cost. Otherwise one row per resource
    whose right cell stacks readers, writers, why and cost (fits 80 columns).
    """
    from rich.table import Table
    from rich.text import Text

    flagged = {v.key for v in plan.violations if v.kind == "no-strategy"}

    def strategy_cell(row: PlanRow) -> Text:
        text = Text(row.strategy, style="bold")
        if row.origin != "recommended":
            text.append(f" ({row.origin})" if not wide else f"\n{row.origin}", style="dim")
        else:
            style = "red" if row.resource.key in flagged else "yellow"
            text.append(" (recommended)" if not wide else "\nrecommended", style=style)
        if row.simulated is not None:
            text.append("\n" if wide else "; ")
            text.append(f"simulated: {row.simulated}", style="bold cyan")
        return text

    def why_of(row: PlanRow) -> str:
        if row.simulated is None:
            return row.why
        return f"{row.why}\nsimulated: {row.simulated_why}"


    def writers_of(res: Resource) -> str:
        writers = res.writers.describe()
        if res.submitters:
            writers += f"\n(submit: {res.submitters.describe()})" if wide else (
                f"; submit: {res.submitters.describe()}"
            )
        return writers

    table = Table(title=title, show_lines=True, header_style="bold", expand=False)
    if wide:
        table.add_column("resource", overflow="fold", ratio=2)
        table.add_column("readers", overflow="fold", ratio=2)
        table.add_column("writers", overflow="fold", ratio=2)
        table.add_column("access", ratio=1)
        table.add_column("strategy", ratio=2)
        table.add_column("why", ratio=5)
        table.add_column("cost", ratio=3)
        for row in plan.rows:
            res = row.resource
            table.add_row(
                res.key, res.readers.describe(), writers_of(res), row.access,
                strategy_cell(row), why_of(row), row.cost,
            )
        return table
    table.add_column("resource", overflow="fold", max_width=24)
    table.add_column("plan")
    for row in plan.rows:
        res = row.resource
        detail = Table.grid(padding=(0, 1))
        detail.add_column(style="dim", no_wrap=True)
        detail.add_column()
        detail.add_row("strategy", strategy_cell(row))
        detail.add_row("readers", res.readers.describe())
        detail.add_row("writers", writers_of(res))
        detail.add_row("why", why_of(row))
        detail.add_row("cost", row.cost)
        table.add_row(Text(res.key, style="bold") + Text(f"\n{row.access}"), detail)
    return table


def render_plan(plan: Plan, console: Any, *, check: bool = False) -> None:
    """Print ``plan`` for people on a rich ``console`` (table, then violations)."""
    wide = console.width >= WIDE
    if plan.rows:
        console.print(plan_table(plan, title=f"accord plan: {plan.source}", wide=wide))
    else:
        console.print(f"accord plan: {plan.source}: no resource that more than one agent touches.")
    if plan.private:
        console.print(
            f"{plan.private} key{'s' if plan.private != 1 else ''} touched by one agent only "
            "(not listed: nothing can race them)."
        )
    if plan.violations:
        count = len(plan.violations)
        label = ("violation" if count == 1 else "violations") if check else "would fail --check"
        console.print(f"[bold red]{count} {label}:[/]")
        for v in plan.violations:
            console.print(f"  [red]{v.kind}[/] {v.message}")
    elif check:
        console.print("[bold green]check passed:[/] every many-writer resource has a strategy.")
