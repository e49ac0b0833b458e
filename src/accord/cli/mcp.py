"""accord mcp: serve the store to MCP clients (stdio, or streamable HTTP)."""

from __future__ import annotations

import contextlib
import signal

import click

from ..errors import UsageError
from ._common import agent_option, err_console, handle_errors, open_store, store_option


def _redacted(url: str) -> str:
    """The store URL without a password, for the startup line."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _need_sdk() -> None:
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            "accord mcp needs the MCP SDK: pip install 'accord[mcp]' (it brings mcp>=2.3,<3)."
        ) from exc


@click.command("mcp")
@click.option(
    "--http",
    "use_http",
    is_flag=True,
    help="Serve streamable HTTP at /mcp (many agents, each with its token) instead of stdio "
    "(one agent).",
)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="With --http: the address to listen on. A non-loopback address needs at "
              "least one agent credential (accord agents add NAME).")
@click.option("--port", type=int, default=8765, show_default=True, help="With --http: the port.")
@click.option("--manifest", default=None, envvar="ACCORD_MANIFEST", metavar="PATH",
              help="Enforce this accord.toml for every agent (default: ACCORD_MANIFEST).")
@store_option
@agent_option
@handle_errors
def mcp_cmd(
    use_http: bool,
    host: str,
    port: int,
    manifest: str | None,
    store_url: str | None,
    agent: str | None,
) -> None:
    """Serve the store as MCP tools to language-model agents.

    \b
    accord mcp --agent NAME             stdio: one agent (Claude Code, Cursor, ...)
    accord mcp --http [--port 8765]     streamable HTTP at /mcp: many agents, one store;
                                        each request's agent is its bearer token's
                                        (accord agents add NAME prints one)

    The tools act as the agent: read, list, write (with expect), delete, leases
    (lease_acquire, write_leased, ...), queue (submit, requests, accept, reject),
    branches (fork, branch_write, merge), log, check and plan. See docs/mcp.md.
    """
    _need_sdk()
    if use_http:
        if agent:
            raise UsageError(
                "--agent names the agent of a stdio server. Over --http every request's agent "
                "is the one its bearer token belongs to: drop --agent (and ACCORD_AGENT), and "
                "give each agent a token with `accord agents add NAME`."
            )
        _serve_http(store_url, manifest, host, port)
    else:
        if not agent:
            raise UsageError(
                "Name the agent this stdio server acts for: accord mcp --agent NAME (or set "
                "ACCORD_AGENT). For many agents sharing one server, use accord mcp --http."
            )
        _serve_stdio(store_url, manifest, agent)


def _serve_stdio(store_url: str | None, manifest: str | None, agent: str) -> None:
    from ..mcp.server import build_server

    with open_store(store_url, manifest=manifest) as store:
        server = build_server(store, agent=agent, transport="stdio")
        # stdout is the protocol channel: everything for people goes to stderr.
        with contextlib.suppress(KeyboardInterrupt):
            server.run("stdio")


def _serve_http(store_url: str | None, manifest: str | None, host: str, port: int) -> None:
    import uvicorn

    from .. import credentials
    from ..mcp.auth import http_app, is_loopback

    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, not {port}.")
    with open_store(store_url, manifest=manifest) as store:
        count = len(credentials.list_agents(store))
        if not is_loopback(host) and count == 0:
            raise UsageError(
                f"Refusing to listen on {host}: it is reachable from other machines, and this "
                "store has no agent credential yet, so no request could be told apart from "
                "another. Create one first (accord agents add NAME), or listen on 127.0.0.1."
            )
        app = http_app(store, host=host, port=port)
        shown = f"[{host}]" if ":" in host else host
        err_console.print(
            f"accord MCP server for {_redacted(store.url)} at http://{shown}:{port}/mcp "
            f"({count} agent credential{'s' if count != 1 else ''})"
        )
        if count == 0:
            err_console.print(
                "no agent has a credential yet: every request gets 401 until you run "
                "`accord agents add NAME`", style="yellow"
            )
        if not is_loopback(host):
            err_console.print(
                "listening beyond this machine: put a TLS-terminating reverse proxy in front, "
                "or tokens cross the network in clear text (docs/mcp.md)", style="yellow"
            )
        # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again
        # with the handler it found: make that an orderly exit, so the store is closed.
        signal.signal(signal.SIGTERM, _exit_quietly)
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def register(cli: click.Group) -> None:
    cli.add_command(mcp_cmd)
