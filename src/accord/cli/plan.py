"""accord plan: the shared-state design protocol as a command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..errors import UsageError
from ._common import EXIT_PLAN, console, emit_json, handle_errors, json_option


@click.command()
@click.argument("manifest", required=False, type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Exit 6 if there are violations (a CI gate).")
@click.option(
    "--from-history",
    "history",
    default=None,
    metavar="HISTORY",
    help="A history (JSONL file or store URL): build the access table from what "
    "the agents really did; with MANIFEST, check the history against it.",
)
@click.option(
    "--write-manifest",
    "write_to",
    default=None,
    metavar="PATH",
    type=click.Path(dir_okay=False),
    help="With --from-history: write a starting manifest to PATH.",
)
@click.option(
    "--simulate",
    "simulated",
    is_flag=True,
    help="Run the cost simulator on each shared resource (shape from the manifest's hints, "
    "or from the history's think times and conflict rates) and show its measured choice.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=10,
    help="With --simulate: seeds per strategy (default 10).",
)
@json_option
@handle_errors
def plan(
    manifest: str | None,
    check: bool,
    history: str | None,
    write_to: str | None,
    simulated: bool,
    seeds: int,
    as_json: bool,
) -> None:
    """Classify every shared resource and pick the simplest strategy that works.

    Prints one row per resource of MANIFEST (default: ACCORD_MANIFEST, else
    ./accord.toml): readers, writers, access class, strategy (declared or
    recommended), why, and its cost. --check exits 6 when a many-writer
    resource has no strategy, patterns with different strategies overlap, or
    (with --from-history) an agent wrote a resource it is not declared on.
    --simulate adds the cost simulator's measured choice to each shared
    resource's row (see `accord simulate`).
    """
    from ..plan import make_plan, plan_history, read_history, write_manifest

    if write_to and not history:
        raise UsageError(
            "--write-manifest builds a manifest from a history: add --from-history HISTORY."
        )
    if write_to and manifest:
        raise UsageError(
            "--write-manifest writes a new manifest from the history alone; drop MANIFEST, or "
            "drop --write-manifest to check the history against MANIFEST."
        )
    if manifest is None and history is None:
        manifest = os.environ.get("ACCORD_MANIFEST") or "accord.toml"
        if not Path(manifest).exists():
            raise UsageError(
                f"No manifest at {manifest}. Name one (accord plan path/to/accord.toml), or "
                "start from a recorded history: accord plan --from-history HISTORY "
                "--write-manifest accord.toml."
            )
    if manifest is not None:
        from ..policy.manifest import load_manifest

        loaded = load_manifest(manifest)
        events = list(read_history(history)) if history else None
        result = make_plan(loaded, events, source=manifest)
    else:
        assert history is not None
        result = plan_history(read_history(history), source=history)
        if write_to:
            write_manifest(result.manifest, write_to, source=history, plan=result)
    if simulated:
        from ..simulator._plan import simulate_plan

        simulate_plan(result, seeds=seeds, processes=None)
    if as_json:
        data = result.to_json()
        if write_to:
            data["wrote"] = write_to
        emit_json(data)
    else:
        from ..plan import render_plan

        render_plan(result, console, check=check)
        if write_to:
            console.print(
                f"wrote a starting manifest to {write_to}: review it, then "
                f"`accord plan {write_to} --check`."
            )
    if check and not result.ok:
        sys.exit(EXIT_PLAN)


def register(cli: click.Group) -> None:
    cli.add_command(plan)
