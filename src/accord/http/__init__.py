"""accord over HTTP, for agents in any language: ``accord serve``.

A conventional HTTP API on HTTP's own vocabulary for optimistic
concurrency: ``GET`` gives a key's value with its version as the ``ETag``;
``PUT`` with ``If-Match`` writes only if the key is still at that version
(412 with what changed otherwise; 428 without a precondition);
``Idempotency-Key`` makes any mutating request safe to repeat. Leases,
the single-writer queue, branches, the history (a watch) and the race
checker have routes too. Every request names its agent with a bearer
token from ``accord agents add NAME``. See docs/http.md.

:func:`app` builds the ASGI app over a store, to serve with uvicorn or to
mount in your own ASGI app. Needs the ``http`` extra:
``pip install 'accord[http]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from ..store import Store

__all__ = ["MAX_WAIT", "app"]

MAX_WAIT = 55.0
"""The longest one request waits (lease acquire, request status, history)."""


def app(
    store: Store,
    *,
    mcp: bool = False,
    host: str = "127.0.0.1",
    port: int = 8780,
) -> ASGIApp:
    """The HTTP API over ``store`` as an ASGI app (FastAPI).

    With ``mcp=True`` the MCP server's streamable HTTP endpoint is served
    beside it at ``/mcp``, with the same agent credentials (needs the
    ``mcp`` extra; ``host`` and ``port`` are where the server listens, for
    the MCP SDK's auth settings). The OpenAPI document is at
    ``/openapi.json``. The caller keeps ownership of ``store`` and must
    close it after the app stops.
    """
    try:
        from ._app import build
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from ..errors import UsageError

        raise UsageError(
            "The HTTP API needs FastAPI and uvicorn: pip install 'accord[http]'."
        ) from exc
    api = build(store)
    if not mcp:
        return api
    from ._mount import with_mcp

    return with_mcp(api, store, host=host, port=port)
