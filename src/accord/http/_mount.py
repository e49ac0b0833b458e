"""The HTTP API and the MCP endpoint in one ASGI app (``accord serve --mcp``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..store import Store


def with_mcp(api: FastAPI, store: Store, *, host: str, port: int) -> ASGIApp:
    """``api``, with requests to ``/mcp`` going to the MCP server's streamable HTTP app.

    Both take the agent from the same bearer tokens (:mod:`accord.credentials`).
    The MCP app's lifespan (its session manager) runs inside the API's.
    """
    try:
        from ..mcp.auth import http_app
    except ImportError as exc:
        from ..errors import UsageError

        raise UsageError(
            "Serving MCP beside the HTTP API needs the MCP SDK: pip install 'accord[mcp]'."
        ) from exc
    mcp_app: Any = http_app(store, host=host, port=port)
    # http_app wraps the SDK's Starlette app (to explain 401/403); its lifespan
    # starts the session manager that every /mcp request needs.
    inner = getattr(mcp_app, "app", mcp_app)
    previous = api.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner.router.lifespan_context(inner), previous(app) as state:
            yield state

    api.router.lifespan_context = lifespan

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] in ("http", "websocket") else ""
        if path == "/mcp" or path.startswith("/mcp/"):
            await mcp_app(scope, receive, send)
        else:
            await api(scope, receive, send)

    return route
