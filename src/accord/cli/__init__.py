"""The accord command line: a thin click layer over the library.

Each command group lives in a module of its own and registers itself with
``register(cli)``; the list below is the whole CLI.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__

# Modules that add commands, in help order.
COMMAND_MODULES = [
    "core",
    "lease",
    "demo",
    "check",
    "plan",
    "queue",
    "branch",
    "mcp",
    "agents",
]


class _Group(click.Group):
    """Usage errors exit with 1, as every accord usage error does (click says 2)."""

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
    6 plan violations.
    """


for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(cli)


def main() -> None:
    cli(prog_name="accord")
