"""``accord check``: the race detector on the command line."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.markup import escape

from ..errors import UsageError
from ..history.linearizable import DEFAULT_BUDGET
from ._common import EXIT_ANOMALIES, common, console, emit_json, open_store

TIMELINE_MAX_EVENTS = 20_000


@click.command()
@click.argument("history", required=False, type=click.Path(dir_okay=False, allow_dash=False))
@click.option("--lenient", is_flag=True, help="Skip malformed lines and count them.")
@click.option(
    "--timeline",
    "timeline_path",
    default=None,
    metavar="PATH",
    help="Also draw the timeline to PATH (.svg, .png or .html).",
)
@click.option("--limit", type=int, default=20, show_default=True, help="Anomalies to print.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Split a history file's keys between this many processes (idle cores only).",
)
@click.option(
    "--otel",
    "otel_mapping",
    default=None,
    metavar="MAPPING",
    type=click.Path(dir_okay=False),
    help="HISTORY is an OpenTelemetry span export; map tool calls with this TOML file.",
)
@click.option(
    "--save-history",
    default=None,
    metavar="PATH",
    help="With --otel: also write the imported history to PATH (JSONL).",
)
@click.option(
    "--linearizable",
    is_flag=True,
    help="Also search each key of a foreign history for a linearization (anomaly "
    "nonlinearizable).",
)
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=None,
    metavar="STEPS",
    help=f"With --linearizable: search steps per key before the key is unknown "
    f"(default {DEFAULT_BUDGET:,}).",
)
@common
def check(
    history: str | None,
    lenient: bool,
    timeline_path: str | None,
    limit: int,
    workers: int,
    otel_mapping: str | None,
    save_history: str | None,
    linearizable: bool,
    budget: int | None,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Check HISTORY (a JSONL history) for lost updates and races.

    Without HISTORY, checks the history of the store (--store). Reads accord
    histories (`accord export`) and foreign ones (agent, op, key, value,
    start, end on each line). With --linearizable, also checks that each key
    of a foreign history behaves as one register or append value in real
    time. Exit code 0 when the history is clean, 5 when anomalies were found
    or the verdict is unknown.
    """
    from ..history.check import check as run_check

    if budget is not None and not linearizable:
        raise UsageError("--budget goes with --linearizable: it bounds that search.")
    budget = budget or DEFAULT_BUDGET
    collected: list[dict[str, Any]] | None = None
    on_event = None
    if timeline_path is not None:
        from ..history.timeline import ensure_format

        ensure_format(timeline_path)
        collected = []

        def on_event(line: int, event: dict[str, Any]) -> None:
            assert collected is not None
            if len(collected) >= TIMELINE_MAX_EVENTS:
                raise UsageError(
                    f"The timeline draws at most {TIMELINE_MAX_EVENTS:,} events; this history "
                    "is longer. Export a slice (accord export --since REV) and draw that, or "
                    "check without --timeline."
                )
            collected.append({**event, "line": line})

    imported = None
    if otel_mapping is not None:
        if history is None:
            raise UsageError("--otel needs HISTORY: the file of exported spans.")
        from ..history.otel import ImportReport, import_spans, write_history

        imported = ImportReport()
        events = import_spans(history, otel_mapping, imported)
        if save_history:
            write_history(events, save_history)
        if not events:
            raise UsageError(
                f"No tool call in {history} matched the mapping ({imported.tool_calls} tool "
                f"calls; tools seen: {', '.join(sorted(imported.unmapped_tools)) or 'none'}). "
                "Name them in [[tool]] tables of the mapping file."
            )
        result = run_check(
            events, lenient=lenient, on_event=on_event, linearizable=linearizable, budget=budget
        )
    elif history is None:
        with open_store(store_url) as store:
            result = _empty_store_result(store) or run_check(
                store, lenient=lenient, on_event=on_event, linearizable=linearizable,
                budget=budget,
            )
    elif save_history:
        raise UsageError("--save-history goes with --otel.")
    else:
        # Drawing needs every event in this process: one worker then.
        workers = 1 if collected is not None else workers
        result = run_check(
            history, lenient=lenient, on_event=on_event, workers=workers,
            linearizable=linearizable, budget=budget,
        )
    if imported is not None:
        result.notes.insert(
            0,
            f"imported {imported.mapped} of {imported.tool_calls} tool calls from "
            f"{imported.spans} spans"
            + (
                f"; unmapped tools: {', '.join(sorted(imported.unmapped_tools))}"
                if imported.unmapped_tools
                else ""
            )
            + (f"; skipped: {'; '.join(imported.problems[:5])}" if imported.problems else ""),
        )

    drawn = None
    if timeline_path is not None and collected is not None:
        from ..history.timeline import draw

        drawn = draw(collected, result, timeline_path)

    if as_json:
        data = result.to_dict("cli")
        if drawn:
            data["timeline"] = drawn
        emit_json(data)
    else:
        print_result(result, limit)
        if drawn:
            console.print(f"timeline written to {escape(drawn)}")
    if not result.ok:
        sys.exit(EXIT_ANOMALIES)


def _empty_store_result(store: Any) -> Any:
    """A clean result for a store with no history yet, else None.

    A fresh store is not a malformed history: nothing happened, so nothing
    raced (exit 0). An empty history *file* stays an error: it is far more
    often a wrong path or a failed export than a history.
    """
    events = iter(store.backend.history(since=0))
    try:
        if next(events, None) is not None:
            return None
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    from ..history import CheckResult

    return CheckResult(notes=["the store holds no history yet: nothing to check"])


def print_result(result: Any, limit: int = 20) -> None:
    """The human report: verdict, then each anomaly with its explanation."""
    style = {"clean": "bold green", "anomalies": "bold red", "unknown": "bold yellow"}
    console.print(f"[{style[result.verdict]}]{escape(result.summary())}[/]")
    if result.lost_writes:
        console.print(f"{result.lost_writes} committed write(s) are missing from the final state.")
    found = result.anomalies + result.unknown
    for shown, anomaly in enumerate(found):
        if shown >= limit:
            console.print(f"... and {len(found) - shown} more (--limit N, or --json for all)")
            break
        tag = anomaly.name if anomaly.certain else f"{anomaly.name} (unknown)"
        colour = "red" if anomaly.certain else "yellow"
        where = f" on {anomaly.key}" if anomaly.key else ""
        who = ", ".join(anomaly.agents)
        console.print(f"\n[{colour}]{escape(tag)}[/]{escape(where)} [dim]({escape(who)})[/]")
        console.out("  " + anomaly.render("cli"))
        lines = [str(e["line"]) for e in anomaly.events if e.get("line") is not None]
        revs = [str(e["rev"]) for e in anomaly.events if e.get("rev") is not None]
        if revs:
            console.print(f"  [dim]revisions {', '.join(revs)}[/]")
        elif lines:
            console.print(f"  [dim]lines {', '.join(lines)}[/]")
    for note in result.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    if result.skipped:
        console.print(f"[yellow]{result.skipped} malformed line(s) skipped (--lenient).[/]")
        for problem in result.problems[:5]:
            console.print(f"  [dim]{escape(problem)}[/]")


def register(cli: click.Group) -> None:
    cli.add_command(check)
