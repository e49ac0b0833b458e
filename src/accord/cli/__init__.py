"""The accord command line: a thin click layer over the library.

Each command group lives in a module of its own and registers itself with
``register(cli)``; the list below is the whole CLI.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, cast

import click

from .. import __version__
from ..errors import UsageError
from ._common import EXIT_INTERRUPTED, EXIT_USAGE, PipeSafeStdout, report

# Modules that add commands, in help order.
COMMAND_MODULES = [
    "core",
    "lease",
    "demo",
    "check",
    "explore",
    "simulate",
    "plan",
    "queue",
    "branch",
    "mcp",
    "serve",
    "agents",
    "watch",
]


class _Group(click.Group):
    """The exit codes and error shapes of every command, click's own errors included.

    Usage errors exit with 1, as every accord usage error does (click says
    2), and with ``--json`` click's parse errors print the same JSON as any
    other error. Ctrl-C exits with 130 (128 + SIGINT), as shells expect,
    not with click's 1 (a usage error). Output to a pipe whose reader went
    away is dropped and the command keeps its own exit code.
    """

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        argv = sys.argv[1:] if args is None else list(args)
        stdout = sys.stdout
        sys.stdout = cast(Any, PipeSafeStdout(stdout))
        try:
            rv = super().main(argv, prog_name, complete_var, False, **extra)
        except click.exceptions.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):
                sys.exit(EXIT_INTERRUPTED)
            click.echo("Aborted!", err=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as exc:
            if "--json" in argv:
                report(_usage_error(exc), as_json=True)
            else:
                exc.show()
            sys.exit(EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
        finally:
            sys.stdout = stdout
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = 1  # type: ignore[misc]
            raise

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: object,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            exc.exit_code = 1  # type: ignore[misc]
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="accord")
def cli() -> None:
    """accord: concurrency control for agents that share state.

    Exit codes: 0 ok, 1 usage error, 2 store unavailable, 3 conflict or
    precondition failed, 4 lease or fencing refused, 5 anomalies found,
    6 plan violations, 130 stopped with Ctrl-C.
    """


def _usage_error(exc: click.ClickException) -> UsageError:
    """click's own error (a bad option value, a missing argument) as accord's."""
    message = exc.format_message().rstrip(".")
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "accord"
    return UsageError(f"{message}. Run `{where} --help` for the options and their values.")


for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(cli)


def main() -> None:
    cli(prog_name="accord")
