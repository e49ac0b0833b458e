"""``accord explore MODULE:WORKFLOW``: the interleaving explorer on the command line."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ._common import EXIT_ANOMALIES, emit_json, err_console, handle_errors, json_option


def load_workflow(target: str) -> tuple[Any, str, dict[str, Any]]:
    """The workflow named by ``module:name`` or ``path/to/file.py:name``.

    Returns (workflow, its name, the options of its ``@accord.explores``
    decorator, if any). The current directory is importable, as with
    ``python -m``.
    """
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise UsageError(
            f"Name the workflow as MODULE:FUNCTION (e.g. myproject.flows:two_editors or "
            f"tests/test_flows.py:test_two_editors), not {target!r}."
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise UsageError(f"There is no file {module_name!r} to load the workflow from.")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise UsageError(f"Cannot load {module_name!r} as a Python module.")
            module = importlib.util.module_from_spec(spec)
            sys.modules.setdefault(path.stem, module)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except ImportError as exc:
        raise UsageError(
            f"Cannot import {module_name!r} ({exc}). Run from the directory that holds it, "
            "or name the file: path/to/file.py:FUNCTION."
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{module_name!r} has no {attr!r}: name an async workflow function.")
        obj = getattr(obj, part)
    options: dict[str, Any] = {}
    inner = getattr(obj, "__accord_workflow__", None)
    if inner is not None:
        options = dict(getattr(obj, "__accord_options__", {}))
        extra = list(inspect.signature(inner).parameters)[1:]
        if extra:
            raise UsageError(
                f"{attr} takes pytest fixtures ({', '.join(extra)}), which the command line "
                "cannot give it: run it with pytest (pytest -k "
                f"{attr} --accord-replay TOKEN replays a schedule)."
            )
        obj = inner
    if not inspect.iscoroutinefunction(obj):
        raise UsageError(
            f"{target} is not an async function: a workflow is async def {attr}(world): ..."
        )
    return obj, getattr(obj, "__qualname__", attr), options


def _preemptions(value: str | None) -> int | bool | None:
    if value is None:
        return False
    if value.lower() in ("none", "unbounded"):
        return None
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise UsageError(f"--preemptions takes a number >= 0 or 'none', not {value!r}.")
    return n


@click.command()
@click.argument("target", metavar="MODULE:WORKFLOW")
@click.option(
    "--schedules",
    type=click.IntRange(min=1),
    default=None,
    help="Schedules to run (default: the workflow's @explores value, else 1000).",
)
@click.option(
    "--strategy",
    type=click.Choice(["pct", "random", "exhaustive"]),
    default=None,
    help="pct (default), random, or exhaustive.",
)
@click.option("--depth", type=click.IntRange(min=1), default=None, help="PCT depth (default 3).")
@click.option(
    "--preemptions",
    default=None,
    metavar="N|none",
    help="Exhaustive: the most preemptions a schedule may have (default 2; none: no bound).",
)
@click.option("--seed", type=int, default=None, help="Seed of pct and random (default: random).")
@click.option("--replay", metavar="TOKEN", default=None, help="Replay one schedule from its token.")
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Steps after which a schedule counts as a livelock (default 10000).",
)
@click.option("--no-shrink", is_flag=True, help="Report the failing schedule as found.")
@click.option(
    "--timeline",
    "timeline_path",
    default=None,
    metavar="PATH",
    help="Draw the failing schedule's store history to PATH (.svg, .png or .html).",
)
@json_option
@handle_errors
def explore(
    target: str,
    schedules: int | None,
    strategy: str | None,
    depth: int | None,
    preemptions: str | None,
    seed: int | None,
    replay: str | None,
    max_steps: int | None,
    no_shrink: bool,
    timeline_path: str | None,
    as_json: bool,
) -> None:
    """Explore the schedules of WORKFLOW (an async function taking the world).

    Runs the workflow's agents under many schedules, one agent moving at a
    time in virtual time, and stops at the first schedule that fails (an
    exception, a deadlock, a livelock, or an anomaly in the store history):
    it prints that schedule, shrunk, as a timeline with a replay token, and
    exits with 5. `--replay TOKEN` runs exactly that schedule again. Exit
    code 0 when every schedule passed.
    """
    from ..explorer import explore as run

    if timeline_path is not None:
        from ..history.timeline import ensure_format

        ensure_format(timeline_path)
    workflow, name, options = load_workflow(target)
    if schedules is not None:
        options["schedules"] = schedules
    if strategy is not None:
        options["strategy"] = strategy
    if depth is not None:
        options["depth"] = depth
    bound = _preemptions(preemptions)
    if bound is not False:
        options["preemptions"] = bound
    if seed is not None:
        options["seed"] = seed
    if max_steps is not None:
        options["max_steps"] = max_steps
    if no_shrink:
        options["shrink"] = False
    if replay is not None:
        options["replay"] = replay
    total = int(options.get("schedules", 1000)) if replay is None else 1
    show = not as_json and err_console.is_terminal
    if show:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task(f"exploring {name}", total=total)

            def progress(done: int, _total: int) -> None:
                bar.update(task, completed=done)

            result = run(workflow, name=name, progress=progress, **options)
    else:
        result = run(workflow, name=name, **options)
    drawn = None
    if timeline_path is not None and result.failure is not None:
        if result.failure.history:
            drawn = result.failure.draw(timeline_path)
        elif not as_json:
            err_console.print(
                "No timeline drawn: this workflow used no store, so there is no history to "
                "draw; the text timeline is above."
            )
    if as_json:
        data = result.to_dict()
        data["timeline"] = drawn
        emit_json(data)
    else:
        hint = f"accord explore --replay {{token}} {target}"
        click.echo(result.report(hint))
        if drawn:
            click.echo(f"Timeline drawn to {drawn}")
    if result.failure is not None:
        sys.exit(EXIT_ANOMALIES)


def register(cli: click.Group) -> None:
    cli.add_command(explore)
