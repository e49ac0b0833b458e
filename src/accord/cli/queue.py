"""submit, requests, accept, reject: the single writer with a queue."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..errors import UsageError
from ..records import Doc
from ._common import (
    common,
    console,
    emit_json,
    open_store,
    read_value,
    require_agent,
    value_options,
    wire,
)


def request_json(request: Any) -> dict[str, Any]:
    """A Request as JSON for --json output."""
    outcome = request.outcome
    if isinstance(outcome, Doc):
        outcome = {"version": outcome.version, "revision": outcome.revision}
    return {
        "id": request.id,
        "key": request.key,
        "submitter": request.submitter,
        "status": request.status,
        "seq": request.seq,
        **wire(request.change, "change", "change_kind"),
        "outcome": outcome,
        "decided_by": request.decided_by,
    }


def _show_change(change: Any) -> str:
    if isinstance(change, str):
        return change.rstrip("\n")
    if isinstance(change, bytes):
        return f"<{len(change)} bytes>"
    return json.dumps(change)


@click.command()
@click.argument("key")
@value_options
@click.option("--idempotency-key", default=None, help="Make the submit safe to repeat.")
@click.option(
    "--wait",
    "wait_",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Wait this long for the writer's decision (exit 3 if rejected, 4 on timeout).",
)
@common
def submit(
    key: str,
    file_: str,
    json_value: bool,
    binary: bool,
    idempotency_key: str | None,
    wait_: float | None,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Submit a change request for KEY (the change from --file or standard input).

    The key's writer decides it; with --wait, wait for that decision.
    """
    change = read_value(file_, json_value, binary)
    with open_store(store_url) as store:
        request = store.session(require_agent(agent)).submit(
            key, change, idempotency_key=idempotency_key
        )
        if wait_ is not None:
            request = request.wait(timeout=wait_)
    if as_json:
        emit_json(request_json(request))
    elif request.pending:
        console.print(f"submitted {request.id} for {key} (pending)")
    elif request.accepted:
        console.print(
            f"{request.id} accepted by {request.decided_by}: {key} v{request.outcome.version}"
        )
    else:
        console.print(f"{request.id} rejected by {request.decided_by}: {request.reason}")
    if request.rejected:
        sys.exit(3)


@click.command()
@click.argument("key")
@click.option(
    "--wait",
    "wait_",
    type=float,
    default=0,
    metavar="SECONDS",
    help="Wait up to this long for a request when none is pending.",
)
@click.option("--peek", is_flag=True, help="List only; do not claim the writer role.")
@common
def requests(
    key: str,
    wait_: float,
    peek: bool,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """List the pending requests of KEY, oldest first, as its writer.

    Claims (or keeps) the writer role for --agent unless --peek. Decide them
    in this order with `accord accept` / `accord reject`.
    """
    from ..strategies import queue

    with open_store(store_url) as store:
        if not peek:
            session = store.session(require_agent(agent))
            iterator = queue.requests(session, key, timeout=wait_)
            first = next(iterator, None)
            iterator.close()
            del first
        found = queue.pending(store, key)
        role = queue.writer_of(store, key)
        current = store.backend.get(key)
        version = 0 if current is None or current.deleted else current.version
    if as_json:
        emit_json(
            {
                "key": key,
                "version": version,
                "writer": role,
                "requests": [request_json(r) for r in found],
            }
        )
        return
    writer = f"writer {role['agent']}" if role else "no writer yet"
    console.print(f"{key} is at version {version}; {writer}; {len(found)} pending")
    for request in found:
        console.print(f"{request.id}  from {request.submitter}: {_show_change(request.change)}")


@click.command()
@click.argument("key")
@click.argument("request_id")
@value_options
@click.option(
    "--expect",
    type=int,
    required=True,
    help="The version of KEY you built the new value on (the write is checked against it).",
)
@common
def accept(
    key: str,
    request_id: str,
    file_: str,
    json_value: bool,
    binary: bool,
    expect: int,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Accept REQUEST_ID of KEY: write KEY (from --file or standard input).

    Only KEY's writer may; requests are decided oldest first.
    """
    from ..strategies import queue

    value = read_value(file_, json_value, binary)
    with open_store(store_url) as store:
        session = store.session(require_agent(agent))
        request = _request_of(store, key, request_id)
        decided = queue.accept(session, request, value, expect=expect)
    if as_json:
        emit_json(request_json(decided))
    else:
        assert isinstance(decided.outcome, Doc)
        console.print(f"accepted {decided.id}: wrote {key} v{decided.outcome.version}")


@click.command()
@click.argument("key")
@click.argument("request_id")
@click.option("--reason", required=True, help="Why: the submitter reads it.")
@common
def reject(
    key: str,
    request_id: str,
    reason: str,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Reject REQUEST_ID of KEY with --reason; nothing is written."""
    from ..strategies import queue

    with open_store(store_url) as store:
        session = store.session(require_agent(agent))
        request = _request_of(store, key, request_id)
        decided = queue.reject(session, request, reason)
    if as_json:
        emit_json(request_json(decided))
    else:
        console.print(f"rejected {decided.id}: {reason}")


def _request_of(store: Any, key: str, request_id: str) -> Any:
    from ..strategies import queue

    request = queue.get_request(store, request_id)
    if request.key != key:
        raise UsageError(
            f"Request {request_id} is a request for {request.key}, not {key}; nothing was "
            f"changed. Decide it with: accord accept {request.key} {request_id} ..."
        )
    return request


def register(cli: click.Group) -> None:
    for command in (submit, requests, accept, reject):
        cli.add_command(command)
