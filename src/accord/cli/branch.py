"""fork, merge and branch read|write|list|discard: isolated copies."""

from __future__ import annotations

import sys
from typing import Any

import click

from ._common import (
    EXIT_CONFLICT,
    common,
    console,
    emit_json,
    err_console,
    open_store,
    print_value,
    read_value,
    require_agent,
    value_options,
    wire,
)


def branch_json(branch: Any) -> dict[str, Any]:
    """A Branch as JSON for --json output."""
    return {
        "id": branch.id,
        "key": branch.key,
        "agent": branch.agent,
        "base_version": branch.base_version,
        "kind": branch.kind,
    }


@click.command()
@click.argument("key")
@click.option(
    "--file",
    "file_",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Also write this value to the new branch ('-' for standard input).",
)
@click.option("--json-value", is_flag=True, help="Parse --file as JSON.")
@click.option("--binary", is_flag=True, help="Take --file as bytes.")
@common
def fork(
    key: str,
    file_: str | None,
    json_value: bool,
    binary: bool,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Fork KEY: a private copy based on its current version; prints the branch id.

    Standard output holds the id alone, so `ID=$(accord fork KEY)` works; what
    was forked goes to standard error. Work on it with `accord branch
    read|write KEY ID`; merge with `accord merge KEY`.
    """
    value = read_value(file_, json_value, binary) if file_ is not None else None
    with open_store(store_url) as store:
        branch = store.session(require_agent(agent)).fork(key)
        if file_ is not None:
            branch.write(value)
    if as_json:
        emit_json(branch_json(branch))
    else:
        click.echo(branch.id)
        err_console.print(f"forked {key} v{branch.base_version} as branch {branch.id}")


@click.group()
def branch() -> None:
    """Read, write, list and discard the branches of a key."""


@branch.command("list")
@click.argument("key")
@common
def list_(key: str, store_url: str | None, agent: str | None, as_json: bool) -> None:
    """The open branches of KEY, oldest first."""
    with open_store(store_url) as store:
        found = store.branches(key)
    if as_json:
        emit_json([branch_json(b) for b in found])
        return
    console.print(f"{len(found)} open branch(es) of {key}")
    for b in found:
        console.print(f"{b.id}  by {b.agent}, based on v{b.base_version}")


@branch.command("read")
@click.argument("key")
@click.argument("branch_id")
@common
def read(key: str, branch_id: str, store_url: str | None, agent: str | None, as_json: bool) -> None:
    """Print the value of branch BRANCH_ID of KEY."""
    from ..strategies.branch import get_branch

    with open_store(store_url) as store:
        found = get_branch(store, key, branch_id)
        value = found.read()
    if as_json:
        emit_json({**branch_json(found), **wire(value)})
    else:
        print_value(value)


@branch.command("write")
@click.argument("key")
@click.argument("branch_id")
@value_options
@common
def write(
    key: str,
    branch_id: str,
    file_: str,
    json_value: bool,
    binary: bool,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Replace the value of branch BRANCH_ID of KEY (from --file or standard input).

    Only the agent that forked the branch may write it (exit 3 otherwise).
    """
    value = read_value(file_, json_value, binary)
    with open_store(store_url) as store:
        found = store.session(require_agent(agent)).branch(key, branch_id)
        found.read()
        found.write(value)
    if as_json:
        emit_json(branch_json(found))
    else:
        console.print(f"wrote branch {branch_id} of {key}")


@branch.command("discard")
@click.argument("key")
@click.argument("branch_id")
@common
def discard(
    key: str, branch_id: str, store_url: str | None, agent: str | None, as_json: bool
) -> None:
    """Close branch BRANCH_ID of KEY without merging it (its owner only)."""
    with open_store(store_url) as store:
        store.session(require_agent(agent)).branch(key, branch_id).discard()
    if as_json:
        emit_json({"id": branch_id, "key": key, "status": "discarded"})
    else:
        console.print(f"discarded branch {branch_id} of {key}")


@click.command()
@click.argument("key")
@click.argument("branch_ids", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Show the merge; write nothing.")
@click.option(
    "--prefer",
    default=None,
    metavar="SIDE",
    help="Settle every conflict with this side: a branch id, or 'current'.",
)
@common
def merge(
    key: str,
    branch_ids: tuple[str, ...],
    dry_run: bool,
    prefer: str | None,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Merge branches of KEY (default: all open ones) and commit the result.

    Prints each conflict with its region or JSON path, the base and every
    side, and exits 3 when any is unresolved (nothing is written then).
    """
    from ..merge import MergeConflict
    from ..strategies.branch import get_branch

    def take(conflict: MergeConflict) -> Any:
        if prefer is not None and prefer in conflict.sides:
            return conflict.take(prefer)
        return None

    with open_store(store_url) as store:
        if branch_ids:
            chosen = [get_branch(store, key, b) for b in branch_ids]
        else:
            chosen = store.branches(key)
        result = store.merge(key, chosen, resolve=take if prefer else None, agent=agent)
        doc = None
        if result.clean and not dry_run:
            doc = result.commit(agent=require_agent(agent))
    settled = [c for c in result.resolved if prefer in c.sides] if prefer else []
    if as_json:
        emit_json(
            {
                "key": key,
                "branches": result.branch_ids,
                "base_version": result.base_version,
                "current_version": result.current_version,
                "clean": result.clean,
                "committed": doc is not None,
                "version": doc.version if doc is not None else None,
                **wire(result.value),
                "conflicts": [c.to_dict() for c in result.conflicts],
                "resolved": len(result.resolved),
                "dropped": [
                    {**c.to_dict(), "kept": prefer, "dropped": [s for s in c.sides if s != prefer]}
                    for c in settled
                ],
            }
        )
    else:
        if result.clean and settled:
            console.out(_settled_report(result, settled, prefer or ""))
        else:
            console.out(result.report())
        if doc is not None:
            console.print(f"committed {key} v{doc.version}")
        elif result.clean:
            console.print("dry run: nothing written")
        else:
            console.print(
                "nothing written: settle the conflicts (edit the branches, or --prefer SIDE) "
                "and merge again"
            )
    if not result.clean:
        sys.exit(EXIT_CONFLICT)


def _settled_report(result: Any, settled: list[Any], prefer: str) -> str:
    """What --prefer kept and what it dropped, conflict by conflict.

    A merge settled by --prefer is not a clean merge: the other sides'
    changes at those places are gone from the result, and whoever merges
    must see which ones before the commit is taken as everyone's work.
    """
    dropped = sorted({s for c in settled for s in c.sides if s != prefer})
    lines = [
        f"Merged {len(result.branch_ids)} branches of {result.key}; --prefer {prefer} settled "
        f"{len(settled)} conflict(s) and DROPPED the change(s) of {', '.join(dropped)} there:"
    ]
    for conflict in settled:
        for line in conflict.describe().splitlines():
            label = line.strip().rstrip(":")
            if line.startswith("conflict at "):
                line = "settled " + line[len("conflict ") :]
            elif line.startswith("  ") and not line.startswith("   ") and label in conflict.sides:
                line = f"  {label} ({'kept' if label == prefer else 'dropped'}):"
            lines.append(line)
    return "\n".join(lines)


def register(cli: click.Group) -> None:
    for command in (fork, merge, branch):
        cli.add_command(command)
