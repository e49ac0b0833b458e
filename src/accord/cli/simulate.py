"""``accord simulate``: what each strategy costs for a shape of work, in virtual time."""

from __future__ import annotations

from typing import Any

import click

from ..errors import UsageError
from ._common import emit_json, err_console, handle_errors, json_option


def _numbers(text: str, name: str, cast: Any) -> list[Any]:
    try:
        values = [cast(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(
            f"{name} takes numbers separated by commas (e.g. 1,2,4,8), not {text!r}."
        ) from None
    if not values:
        raise UsageError(f"{name} needs at least one number (e.g. 1,2,4,8).")
    return values


def _bar() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


@click.command()
@click.argument("shape", required=False, metavar="[SHAPE]")
@click.option("--agents", type=int, default=None, help="Agents (1..64).")
@click.option("--resources", type=int, default=None, help="Shared keys the changes pick from.")
@click.option("--skew", type=float, default=None, help="Zipf exponent s of the pick (0: uniform).")
@click.option(
    "--think",
    default=None,
    metavar="KIND:MEAN[,SIGMA]",
    help="Think time per change: fixed:30, exp:30, lognormal:30,0.5 (seconds).",
)
@click.option("--operations", type=int, default=None, help="Changes per agent.")
@click.option(
    "--conflict", type=float, default=None, help="Share of changes that truly conflict (0..1)."
)
@click.option(
    "--rethink/--no-rethink",
    default=None,
    help="A lost optimistic attempt thinks again (a document) or just re-applies (a counter).",
)
@click.option(
    "--apply",
    "apply_",
    type=float,
    default=None,
    help="Seconds the queue's writer takes per request.",
)
@click.option(
    "--synthesis", type=float, default=None, help="Seconds to resolve one merge conflict."
)
@click.option("--op-latency", type=float, default=None, help="Seconds one store operation takes.")
@click.option(
    "--cost",
    "--cost-per-second",
    "cost",
    type=float,
    default=None,
    help="Price of one second of model time.",
)
@click.option("--currency", default=None, help="The price's currency label (default $).")
@click.option(
    "--strategies",
    default=None,
    metavar="LIST",
    help="Comma-separated: blind,optimistic,lease,queue,branch (default: all).",
)
@click.option(
    "--seeds", type=click.IntRange(min=1), default=20, help="Seeds per point (default 20)."
)
@click.option("--seed", type=click.IntRange(min=0), default=0, help="First seed (default 0).")
@click.option("--sweep", is_flag=True, help="Sweep agent counts and conflict rates.")
@click.option(
    "--sweep-agents", default="1,2,4,8,16,24,32,64", metavar="LIST", help="Agent counts of --sweep."
)
@click.option(
    "--sweep-conflicts",
    default="0,0.1,0.25,0.5,1",
    metavar="LIST",
    help="Conflict rates of --sweep.",
)
@click.option(
    "--plot",
    "plot_path",
    default=None,
    metavar="PATH",
    help="Draw the sweep to PATH.png and PATH.svg (implies --sweep; needs matplotlib).",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    help="Processes (default: one per core).",
)
@json_option
@handle_errors
def simulate(
    shape: str | None,
    agents: int | None,
    resources: int | None,
    skew: float | None,
    think: str | None,
    operations: int | None,
    conflict: float | None,
    rethink: bool | None,
    apply_: float | None,
    synthesis: float | None,
    op_latency: float | None,
    cost: float | None,
    currency: str | None,
    strategies: str | None,
    seeds: int,
    seed: int,
    sweep: bool,
    sweep_agents: str,
    sweep_conflicts: str,
    plot_path: str | None,
    processes: int | None,
    as_json: bool,
) -> None:
    """Simulate a shape of work under each strategy and recommend one.

    SHAPE is a named shape (document, counter, memory) whose fields the
    options change; without it, the default workload. Every strategy runs
    accord's real code in virtual time (no real time passes for the time it
    simulates), for --seeds seeds; the table shows goodput, latency from
    intent to landing, retries, model time thrown away and its cost, waiting,
    merge conflicts, lost updates and the cost per landed change, and the
    recommendation. --sweep runs every agent count and conflict rate;
    --plot draws it.
    """
    from ..simulator import Workload
    from ..simulator import shape as named
    from ..simulator._api import simulate as run
    from ..simulator._api import sweep as run_sweep

    if plot_path is not None:
        from ..simulator._plot import ensure_matplotlib

        ensure_matplotlib()
        sweep = True
    # Checked whether or not --sweep is given: a bad list is never ignored.
    agent_counts = _numbers(sweep_agents, "--sweep-agents", int)
    conflict_rates = _numbers(sweep_conflicts, "--sweep-conflicts", float)
    base = named(shape) if shape else Workload()
    fields: dict[str, Any] = {
        "agents": agents,
        "resources": resources,
        "skew": skew,
        "think": think,
        "operations": operations,
        "conflict": conflict,
        "rethink": rethink,
        "apply": apply_,
        "synthesis": synthesis,
        "op_latency": op_latency,
        "cost_per_second": cost,
        "currency": currency,
    }
    base = base.with_(**{k: v for k, v in fields.items() if v is not None})
    names = strategies.split(",") if strategies else None
    show = not as_json and err_console.is_terminal
    bar = _bar() if show else None

    def go(progress: Any) -> Any:
        if sweep:
            return run_sweep(
                base,
                agents=agent_counts,
                conflicts=conflict_rates,
                strategies=names,
                seeds=seeds,
                seed=seed,
                processes=processes,
                progress=progress,
            )
        return run(
            base,
            strategies=names,
            seeds=seeds,
            seed=seed,
            processes=processes,
            progress=progress,
        )

    if bar is not None:
        with bar:
            task = bar.add_task(f"simulating {base.name}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = go(progress)
    else:
        result = go(None)
    drawn: list[str] = []
    if plot_path is not None:
        from ..simulator._plot import plot_sweep

        drawn = [str(p) for p in plot_sweep(result, plot_path)]
    if as_json:
        data = result.to_dict()
        if drawn:
            data["plots"] = drawn
        emit_json(data)
        return
    from rich.console import Console

    from ..simulator._render import point_table, sweep_table

    console = Console()
    if sweep:
        console.print(sweep_table(result))
    else:
        console.print(point_table(result))
        console.print(
            f"[bold]{base.name}:[/] use [bold green]{result.choice.strategy}[/]: "
            f"{result.choice.reason}"
        )
    for path in drawn:
        console.print(f"drawn to {path}")


def register(cli: click.Group) -> None:
    cli.add_command(simulate)
