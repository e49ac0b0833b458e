"""accord serve: the HTTP API (and, with --mcp, the MCP endpoint beside it)."""

from __future__ import annotations

import contextlib
import os
import signal

import click

from ..errors import UsageError
from ._common import err_console, handle_errors, open_store, store_option


def _need_http() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            "accord serve needs FastAPI and uvicorn: pip install 'accord[http]'."
        ) from exc


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on. A non-loopback address needs at least one "
              "agent credential (accord agents add NAME).")
@click.option("--port", type=int, default=8780, show_default=True, help="The port.")
@click.option("--mcp", "with_mcp", is_flag=True,
              help="Also serve the MCP endpoint (streamable HTTP) at /mcp, with the same "
              "agent tokens.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="uvicorn worker processes, each with its own connections to the store "
              "(several pay on PostgreSQL; on SQLite one is enough).")
@click.option("--manifest", default=None, envvar="ACCORD_MANIFEST", metavar="PATH",
              help="Enforce this accord.toml for every agent (default: ACCORD_MANIFEST).")
@store_option
@handle_errors
def serve_cmd(
    host: str,
    port: int,
    with_mcp: bool,
    workers: int,
    manifest: str | None,
    store_url: str | None,
) -> None:
    """Serve the store over HTTP to agents and services in any language.

    \b
    accord serve [--host 127.0.0.1 --port 8780] [--mcp] [--workers N]

    Each request names its agent with 'Authorization: Bearer <token>' (accord
    agents add NAME prints one). GET a key for its value and ETag, PUT it back
    with If-Match; Idempotency-Key makes a retry safe. The OpenAPI document is
    at /openapi.json. See docs/http.md.
    """
    _need_http()
    import uvicorn

    from .. import credentials
    from ..http import _serve as serving
    from ..http import app
    from .mcp import _redacted

    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, not {port}.")
    if with_mcp:
        try:
            import mcp.server.mcpserver  # noqa: F401
        except ImportError as exc:
            raise UsageError(
                "--mcp needs the MCP SDK: pip install 'accord[mcp]' (or drop --mcp)."
            ) from exc
    with open_store(store_url, manifest=manifest) as store:
        count = len(credentials.list_agents(store))
        if not credentials.is_loopback(host) and count == 0:
            raise UsageError(
                f"Refusing to listen on {host}: it is reachable from other machines, and this "
                "store has no agent credential yet, so no request could be told apart from "
                "another. Create one first (accord agents add NAME), or listen on 127.0.0.1."
            )
        shown = f"[{host}]" if ":" in host else host
        err_console.print(
            f"accord HTTP API for {_redacted(store.url)} at http://{shown}:{port}/v1/"
            + (f" and MCP at http://{shown}:{port}/mcp" if with_mcp else "")
            + f" ({count} agent credential{'s' if count != 1 else ''}"
            + (f", {workers} workers" if workers > 1 else "") + ")"
        )
        if count == 0:
            err_console.print(
                "no agent has a credential yet: every request gets 401 until you run "
                "`accord agents add NAME`", style="yellow"
            )
        if not credentials.is_loopback(host):
            err_console.print(
                "listening beyond this machine: put a TLS-terminating reverse proxy in front, "
                "or tokens cross the network in clear text (docs/http.md)", style="yellow"
            )
        signal.signal(signal.SIGTERM, _exit_quietly)
        if workers > 1:
            # Each worker is a process of its own and opens its own store.
            store_url = store.url
            store.close()
            os.environ[serving.ENV_URL] = store_url
            os.environ[serving.ENV_MANIFEST] = manifest or ""
            os.environ[serving.ENV_MCP] = "1" if with_mcp else ""
            os.environ[serving.ENV_HOST] = host
            os.environ[serving.ENV_PORT] = str(port)
            with contextlib.suppress(KeyboardInterrupt):
                uvicorn.run("accord.http._serve:from_env", factory=True, host=host, port=port,
                            workers=workers, log_level="warning", access_log=False)
            return
        served = app(store, mcp=with_mcp, host=host, port=port)
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.run(served, host=host, port=port, log_level="warning", access_log=False)


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def register(cli: click.Group) -> None:
    cli.add_command(serve_cmd)
