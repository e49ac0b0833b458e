"""The app factory of ``accord serve --workers N``: each uvicorn worker process
opens its own store from the environment the command set."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import ASGIApp

ENV_URL = "ACCORD_SERVE_STORE"
ENV_MANIFEST = "ACCORD_SERVE_MANIFEST"
ENV_MCP = "ACCORD_SERVE_MCP"
ENV_HOST = "ACCORD_SERVE_HOST"
ENV_PORT = "ACCORD_SERVE_PORT"


def closing(app: Any, store: Any) -> None:
    """Close ``store`` when ``app`` (a FastAPI app) shuts down."""
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(inner: Any) -> AsyncIterator[Any]:
        try:
            async with previous(inner) as state:
                yield state
        finally:
            store.close()

    app.router.lifespan_context = lifespan


def from_env() -> ASGIApp:
    """The app over the store the environment names (called once per worker)."""
    import accord

    from . import app

    store = accord.open(os.environ.get(ENV_URL) or None,
                        manifest=os.environ.get(ENV_MANIFEST) or None)
    api: Any = app(store)
    closing(api, store)
    if os.environ.get(ENV_MCP) == "1":
        from ._mount import with_mcp

        return with_mcp(api, store, host=os.environ.get(ENV_HOST, "127.0.0.1"),
                        port=int(os.environ.get(ENV_PORT, "8780")))
    return api  # type: ignore[no-any-return]
