"""accord agents add | list | rotate | revoke: the credentials of agents.

A token is printed once, by ``add`` and ``rotate``; the store keeps only its
hash. Servers that many agents share (``accord mcp --http``) take an
agent's identity from its token.
"""

from __future__ import annotations

import click
from rich.table import Table

from ._common import (
    console,
    emit_json,
    err_console,
    handle_errors,
    json_option,
    open_store,
    store_option,
)


@click.group()
def agents() -> None:
    """Give agents credentials for the shared servers (accord mcp --http).

    \b
    accord agents add NAME       prints NAME's token once: hand it to that agent
    accord agents list           who has a credential
    accord agents rotate NAME    a new token; the old one stops working at once
    accord agents revoke NAME    the token stops working at once
    """


def _token_out(agent: str, token_id: str, token: str, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json({"agent": agent, "token_id": token_id, "token": token})
        return
    # The token alone on stdout, so `TOKEN=$(accord agents add NAME)` captures it.
    click.echo(token)
    err_console.print(
        f"{verb} the credential of {agent} (token id {token_id}). This is the only time the "
        "token is shown: give it to the agent now (Authorization: Bearer <token>).",
        style="dim",
    )


@agents.command("add")
@click.argument("name")
@store_option
@json_option
@handle_errors
def add_cmd(name: str, store_url: str | None, as_json: bool) -> None:
    """Create a credential for agent NAME and print its token once."""
    from .. import credentials

    with open_store(store_url) as store:
        cred, token = credentials.add(store, name)
    _token_out(cred.agent, cred.token_id, token, as_json, "created")


@agents.command("list")
@store_option
@json_option
@handle_errors
def list_cmd(store_url: str | None, as_json: bool) -> None:
    """Every agent with a credential (never the tokens)."""
    from .. import credentials

    with open_store(store_url) as store:
        found = credentials.list_agents(store)
    if as_json:
        emit_json(
            [
                {"agent": c.agent, "token_id": c.token_id, "created": c.created,
                 "rotated": c.rotated}
                for c in found
            ]
        )
        return
    if not found:
        console.print("no agent has a credential (accord agents add NAME)")
        return
    table = Table(title="agent credentials")
    for column in ("agent", "token id", "created", "rotated"):
        table.add_column(column)
    for c in found:
        table.add_row(c.agent, c.token_id, c.created, c.rotated or "")
    console.print(table)


@agents.command("rotate")
@click.argument("name")
@store_option
@json_option
@handle_errors
def rotate_cmd(name: str, store_url: str | None, as_json: bool) -> None:
    """Replace NAME's token with a new one (printed once); the old one stops working."""
    from .. import credentials

    with open_store(store_url) as store:
        cred, token = credentials.rotate(store, name)
    _token_out(cred.agent, cred.token_id, token, as_json, "rotated")


@agents.command("revoke")
@click.argument("name")
@store_option
@json_option
@handle_errors
def revoke_cmd(name: str, store_url: str | None, as_json: bool) -> None:
    """Revoke NAME's credential: its token is refused from the next request on."""
    from .. import credentials

    with open_store(store_url) as store:
        cred = credentials.revoke(store, name)
    if as_json:
        emit_json({"agent": cred.agent, "token_id": cred.token_id, "revoked": True})
    else:
        console.print(f"revoked the credential of {cred.agent} (token id {cred.token_id})")


def register(cli: click.Group) -> None:
    cli.add_command(agents)
