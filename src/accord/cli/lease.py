"""accord lease acquire | renew | release | status.

A lease outlives the command that took it: ``acquire`` prints the fencing
token, which later commands (``write --lease TOKEN``, ``lease renew``,
``lease release``) pass back. The lease ends when released or when its TTL
runs out on the store's clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table

from ._common import common, console, emit_json, err_console, open_store, require_agent


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease_json(lease: Any) -> dict[str, Any]:
    return {
        "key": lease.key,
        "token": lease.token,
        "mode": lease.mode,
        "agent": lease.agent,
        "expires": _iso(lease.expires),
        "expires_epoch": lease.expires,
        "ttl": lease.ttl,
    }


@click.group()
def lease() -> None:
    """Take, renew and release leases (pessimistic locking with fencing tokens).

    \b
    accord lease acquire docs/plan.md --ttl 60 --wait 10   # prints the token
    accord write docs/plan.md --lease TOKEN < plan.md
    accord lease release docs/plan.md --token TOKEN
    """


@lease.command("acquire")
@click.argument("key")
@click.option(
    "--ttl",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds the lease lives unless renewed (store clock).",
)
@click.option(
    "--wait",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait in line for it (0: do not wait).",
)
@click.option(
    "--mode",
    type=click.Choice(["exclusive", "shared"]),
    default="exclusive",
    show_default=True,
    help="exclusive: one holder, may write; shared: readers.",
)
@common
def acquire_cmd(
    key: str,
    ttl: float,
    wait: float,
    mode: str,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Acquire a lease on KEY; print its fencing token and expiry.

    Exit code 4 when it is not granted within --wait (LeaseTimeout) or
    waiting would deadlock.
    """
    from ..strategies import lease as lease_mod

    with open_store(store_url) as store:
        session = store.session(require_agent(agent))

        def on_wait(position: int) -> None:
            if not as_json:
                err_console.print(f"waiting for {key}: number {position} in line")

        granted = lease_mod.acquire(session, key, ttl=ttl, wait=wait, mode=mode, on_wait=on_wait)
    if as_json:
        emit_json(_lease_json(granted))
        return
    console.print(
        f"token {granted.token} on {granted.key} ({granted.mode}) for {session.agent}, "
        f"expires {_iso(granted.expires)}"
    )
    console.print(
        f"write with: accord write {key} --lease {granted.token}; "
        f"release with: accord lease release {key} --token {granted.token}",
        style="dim",
    )


@lease.command("renew")
@click.argument("key")
@click.option("--token", type=int, required=True, help="The token acquire printed.")
@click.option(
    "--ttl",
    type=float,
    default=None,
    help="New TTL from now (default: the TTL it was granted with).",
)
@common
def renew_cmd(
    key: str,
    token: int,
    ttl: float | None,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Extend the lease TOKEN on KEY. An expired lease cannot be renewed (exit 4)."""
    from ..strategies import lease as lease_mod

    with open_store(store_url) as store:
        session = store.session(require_agent(agent))
        held = lease_mod.from_token(session, key, token)
        held.renew(ttl)
    if as_json:
        emit_json(_lease_json(held))
    else:
        console.print(f"renewed token {held.token} on {key}, expires {_iso(held.expires)}")


@lease.command("release")
@click.argument("key")
@click.option("--token", type=int, required=True, help="The token acquire printed.")
@common
def release_cmd(
    key: str,
    token: int,
    store_url: str | None,
    agent: str | None,
    as_json: bool,
) -> None:
    """Release the lease TOKEN on KEY and wake whoever waits next."""
    from ..strategies import lease as lease_mod

    with open_store(store_url) as store:
        session = store.session(require_agent(agent))
        held = lease_mod.from_token(session, key, token)
        held.release()
    if as_json:
        emit_json({"key": key, "token": token, "released": True})
    else:
        console.print(f"released token {token} on {key}")


@lease.command("status")
@click.argument("key")
@common
def status_cmd(key: str, store_url: str | None, agent: str | None, as_json: bool) -> None:
    """Show who holds KEY and who waits for it, in line order."""
    from ..strategies import lease as lease_mod

    with open_store(store_url) as store:
        info = lease_mod.status(store, key)
    rows = [*info.holders, *info.waiters]
    if as_json:
        emit_json(
            {
                "key": key,
                "last_token": info.last_token,
                "holders": [
                    {"agent": h.agent, "mode": h.mode, "token": h.token, "expires": _iso(h.expires)}
                    for h in info.holders
                ],
                "waiters": [
                    {"agent": w.agent, "mode": w.mode, "position": w.position, "ticket": w.ticket}
                    for w in info.waiters
                ],
            }
        )
        return
    if not rows:
        console.print(f"nobody holds or waits for {key} (last token: {info.last_token})")
        return
    table = Table(title=f"leases on {key}")
    for column in ("state", "agent", "mode", "token", "position", "expires"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.state,
            r.agent,
            r.mode,
            "" if r.token is None else str(r.token),
            "" if r.state == "held" else str(r.position),
            _iso(r.expires) or "" if r.state == "held" else "",
        )
    console.print(table)


def register(cli: click.Group) -> None:
    cli.add_command(lease)
