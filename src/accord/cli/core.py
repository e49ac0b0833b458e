"""read, write, delete, log, export."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from ..records import Doc
from ._common import (
    common,
    console,
    emit_json,
    open_store,
    print_value,
    read_value,
    require_agent,
    wire,
)


def doc_json(doc: Doc) -> dict[str, Any]:
    return {
        "key": doc.key,
        **wire(doc.value),
        "version": doc.version,
        "revision": doc.revision,
        "author": doc.author,
    }


@click.command()
@click.argument("key")
@common
def read(key: str, store_url: str | None, agent: str | None, as_json: bool) -> None:
    """Print the current value of KEY (and its version on stderr)."""
    with open_store(store_url) as store:
        doc = store.session(agent or "cli").read(key)
    if as_json:
        emit_json(doc_json(doc))
        return
    print_value(doc.value)
    click.echo(f"{doc.key} v{doc.version} by {doc.author} (rev {doc.revision})", err=True)


@click.command()
@click.argument("key")
@click.option(
    "--file",
    "file_",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="Read the value from this file (default: standard input).",
)
@click.option("--expect", type=int, default=None, help="Write only if KEY is at this version.")
@click.option("--force", is_flag=True, help="Overwrite blindly (recorded as a blind write).")
@click.option(
    "--lease",
    "lease_token",
    type=int,
    default=None,
    metavar="TOKEN",
    help="Write under this lease token (fenced if it is not the live lease).",
)
@click.option("--idempotency-key", default=None, help="Make the write safe to repeat.")
@click.option("--json-value", is_flag=True, help="Parse the input as JSON and store JSON.")
@click.option("--binary", is_flag=True, help="Store the input as bytes.")
@common
def write(
    key: str,
    file_: str,
    expect: int | None,
    force: bool,
    lease_token: int | None,
    idempotency_key: str | None,
    json_value: bool,
    binary: bool,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Write KEY from --file or standard input.

    Without --expect, --lease or --force the write only creates KEY. While a
    lease on KEY is live, only a write under an exclusive lease of KEY
    (--lease) is accepted; others exit 4 (LeaseHeld).
    """
    value = read_value(file_, json_value, binary)
    with open_store(store_url) as store:
        session = store.session(require_agent(agent))
        doc = session.write(
            key,
            value,
            expect=expect,
            force=force,
            lease=lease_token,
            idempotency_key=idempotency_key,
        )
    if as_json:
        emit_json(doc_json(doc))
    else:
        console.print(f"wrote {doc.key} v{doc.version} (rev {doc.revision}) as {doc.author}")


@click.command()
@click.argument("key")
@click.option("--expect", type=int, default=None, help="Delete only if KEY is at this version.")
@click.option("--force", is_flag=True, help="Delete blindly.")
@click.option(
    "--lease",
    "lease_token",
    type=int,
    default=None,
    metavar="TOKEN",
    help="Delete under this lease token (fenced if it is not the live lease).",
)
@common
def delete(
    key: str,
    expect: int | None,
    force: bool,
    lease_token: int | None,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Delete KEY (needs --expect, --lease or --force).

    While a lease on KEY is live, only a delete under an exclusive lease of
    KEY (--lease) is accepted.
    """
    with open_store(store_url) as store:
        version = store.session(require_agent(agent)).delete(
            key, expect=expect, force=force, lease=lease_token
        )
    if as_json:
        emit_json({"key": key, "version": version, "deleted": True})
    else:
        console.print(f"deleted {key} (v{version})")


@click.command()
@click.option("--key", default=None, help="Only events of this key.")
@click.option("--since", type=int, default=0, help="Only events after this revision.")
@click.option("--limit", type=int, default=200, show_default=True, help="At most this many.")
@click.option(
    "--timeline",
    "timeline_path",
    default=None,
    metavar="PATH",
    help="Draw these events as a timeline to PATH (.svg, .png or .html) instead.",
)
@common
def log(
    key: str | None,
    since: int,
    limit: int,
    timeline_path: str | None,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Show the store's history, oldest first."""
    if timeline_path is not None:
        from ..history.timeline import ensure_format

        ensure_format(timeline_path)
    with open_store(store_url) as store:
        events = []
        for i, event in enumerate(store.history(key=key, since=since)):
            if i >= limit:
                break
            events.append(event)
    if timeline_path is not None:
        from ..history.timeline import draw_history

        _, result = draw_history([e.to_dict() for e in events], timeline_path)
        summary = result.summary() if result is not None else "no events"
        if as_json:
            emit_json({"timeline": timeline_path, "events": len(events), "summary": summary})
        else:
            console.print(f"timeline of {len(events)} events written to {timeline_path}")
            console.print(summary)
        return
    if as_json:
        for event in events:
            emit_json(event.to_dict())
        return
    table = Table(title=f"history of {store_url or 'the store'}", show_lines=False)
    for column in ("rev", "time", "agent", "op", "key", "version", "based on", "check", "outcome"):
        table.add_column(column)
    for e in events:
        style = "red" if e.outcome not in ("ok",) else None
        table.add_row(
            str(e.rev),
            e.time[11:23],
            e.agent,
            e.op,
            e.key or "",
            "" if e.version is None else str(e.version),
            "" if e.based_on is None else str(e.based_on),
            e.check,
            e.outcome,
            style=style,
        )
    console.print(table)


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.option("--since", type=int, default=0, help="Only events after this revision.")
@click.option("--shiviz", is_flag=True, help="Write a ShiViz log (agent, event, vector clock).")
@common
def export(
    path: str, since: int, shiviz: bool, store_url: str | None, agent: str | None, as_json: bool
) -> None:
    """Write the history to PATH as JSONL (the documented format), or as a ShiViz log."""
    with open_store(store_url) as store:
        if shiviz:
            from ..history.shiviz import write_shiviz

            with open(path, "w", encoding="utf-8") as out:
                count = write_shiviz(store.backend.history(since=since), out)
        else:
            count = store.export_history(path, since=since)
    if as_json:
        emit_json({"path": path, "events": count})
    else:
        console.print(f"exported {count} events to {path}")


def register(cli: click.Group) -> None:
    for command in (read, write, delete, log, export):
        cli.add_command(command)
