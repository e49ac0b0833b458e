"""accord demo."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    from ..demo import demo

    cli.add_command(demo)
