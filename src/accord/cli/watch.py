"""watch: print the changes of a key or prefix as they are committed."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.markup import escape

from .. import params
from ..errors import UsageError
from ..watch import WatchEvent
from ._common import common, console, emit_json, open_store, wire

_PREVIEW = 60


def event_json(event: WatchEvent) -> dict[str, Any]:
    """One JSON line of ``accord watch --json``."""
    out: dict[str, Any] = {
        "revision": event.revision,
        "key": event.key,
        "version": event.version,
        "kind": event.kind,
        "op": event.op,
        "agent": event.agent,
        "time": event.time,
        "hash": event.hash,
        "superseded": event.superseded,
    }
    if event.kind == "write" and not event.superseded:
        out.update(wire(event.value, kind_name="value_kind"))
    return out


def _preview(event: WatchEvent) -> str:
    if event.kind == "delete":
        return "[dim](deleted)[/]"
    if event.superseded:
        return "[dim](superseded by a later version)[/]"
    value = event.value
    if isinstance(value, bytes):
        text = f"<{len(value)} bytes>"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if len(text) > _PREVIEW:
        text = text[: _PREVIEW - 1] + "…"
    return escape(text)


@click.command()
@click.argument("target", metavar="KEY|PREFIX")
@click.option(
    "--prefix",
    is_flag=True,
    help="Watch every key that starts with the argument (an argument that ends "
    "with / is a prefix anyway; '' is every key).",
)
@click.option(
    "--since",
    type=int,
    default=None,
    metavar="REV",
    help="Print the changes after this revision (default: from now; 0: every change "
    "in the history). Resume with the revision of the last change printed.",
)
@click.option("--count", type=int, default=None, metavar="N", help="Stop after N changes.")
@click.option(
    "--timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop after this many seconds without a change (default: never).",
)
@common
def watch(
    target: str,
    prefix: bool,
    since: int | None,
    count: int | None,
    timeout: float | None,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Print every change of KEY, or of the keys under PREFIX, as it is committed.

    One line per write or delete, in revision order, none skipped and none
    twice (JSON lines with --json, flushed one by one). Ctrl-C stops it
    (exit code 0).
    """
    if count is not None:
        params.count(count, "count", example="10")
    if timeout is not None and not 0 <= timeout < float("inf"):
        # The library's own message would name the option of the other
        # commands that wait (--wait); this one is --timeout.
        raise UsageError(
            f"--timeout {timeout:g} is out of range: use a finite number of seconds, at "
            "least 0 (or leave it out to watch until Ctrl-C). Nothing was changed."
        )
    with open_store(store_url) as store:
        session = store.session(agent or "cli")
        events = session.watch(target, since, prefix=prefix, timeout=timeout)
        if count == 0:
            return
        seen = 0
        try:
            for event in events:
                if as_json:
                    emit_json(event_json(event))
                else:
                    console.print(
                        f"[dim]rev {event.revision}[/] [bold]{escape(event.key)}[/] "
                        f"v{event.version} {event.kind} by {escape(event.agent)} "
                        f"[dim]{event.time[11:23]}[/] {_preview(event)}"
                    )
                sys.stdout.flush()
                seen += 1
                if count is not None and seen >= count:
                    break
        except KeyboardInterrupt:
            # Ctrl-C is how a watch is meant to stop: not an error.
            pass


def register(cli: click.Group) -> None:
    cli.add_command(watch)
