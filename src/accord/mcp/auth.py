"""Streamable HTTP: bearer tokens decide who the agent is.

Every HTTP request to ``/mcp`` must carry ``Authorization: Bearer <token>``
with a live token from ``accord agents add NAME`` (see
:mod:`accord.credentials`). The MCP SDK's bearer middleware asks
:class:`StoreTokenVerifier` on every request, and the verifier reads the
store, so a token rotated or revoked by any process is refused on its next
request. What follows:

* no token, or not a live one: 401, and nothing reaches a tool;
* a live token of an agent the store's manifest does not declare: 403;
* otherwise the tools act as the token's agent (:func:`token_identity`),
  whatever any tool argument says.

The SDK's 401/403 bodies say only "Authentication required";
:class:`ExplainAuthErrors` rewrites them into messages that say what to do.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord import credentials
from accord.credentials import is_loopback
from accord.errors import PolicyViolation, UsageError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from accord.store import Store

__all__ = [
    "SCOPE",
    "ExplainAuthErrors",
    "StoreTokenVerifier",
    "http_app",
    "is_loopback",
    "token_identity",
]

SCOPE = "accord:agent"
"""The scope every request needs: a live token of an agent the manifest allows."""


class StoreTokenVerifier:
    """The MCP SDK's ``TokenVerifier``, backed by the credentials in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's agent as an ``AccessToken`` (``client_id`` is the agent), or None.

        A token of an agent the manifest does not declare verifies without
        the :data:`SCOPE`, so the SDK answers 403 (known, but not allowed).
        """
        # The store may be across the network (PostgreSQL): never block the event loop.
        agent = await anyio.to_thread.run_sync(credentials.verify, self.store, token)
        if agent is None:
            return None
        scopes = [SCOPE]
        policy = self.store.policy
        if policy is not None:
            try:
                policy.check_agent(agent)
            except PolicyViolation:
                scopes = []
        # The secret itself is not kept in the request's state: only its agent.
        return AccessToken(token=f"agent:{agent}", client_id=agent, scopes=scopes)


def token_identity(ctx: Context) -> str:
    """The agent whose token came with this request (tools call it on every call)."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if isinstance(user, AuthenticatedUser):
        return str(user.access_token.client_id)
    token = get_access_token()
    if token is not None:
        return token.client_id
    # The bearer middleware refuses such requests before any tool runs.
    raise UsageError(
        "This request carries no agent credential. Send 'Authorization: Bearer <token>' with a "
        "token from `accord agents add NAME`."
    )


_UNAUTHORIZED = (
    "No valid accord agent token came with this request. Send the header "
    "'Authorization: Bearer <token>' with the token `accord agents add NAME` printed for your "
    "agent; a rotated or revoked token no longer works (ask for a new one with "
    "`accord agents rotate NAME`)."
)


class ExplainAuthErrors:
    """ASGI middleware: give the SDK's 401 and 403 answers a body that says what to do.

    The status codes and the ``WWW-Authenticate`` header stay as the SDK
    sends them (RFC 6750); only the JSON body's ``error_description`` changes.
    """

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}

        async def explain(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                held["start"] = message
                return
            if "start" in held and message["type"] == "http.response.body":
                start = held.pop("start")
                body = self._body(start["status"], scope)
                headers = [
                    (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
                ]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, explain)

    def _body(self, status: int, scope: Scope) -> bytes:
        if status == 401:
            return _json_error("invalid_token", _UNAUTHORIZED)
        user = scope.get("user")
        agent = user.access_token.client_id if isinstance(user, AuthenticatedUser) else None
        description = (
            f"The token is valid, but its agent {agent!r} is not declared in this server's "
            "manifest, so it may not use this store. Declare the agent in the manifest "
            f"([agents.{agent}]) and restart the server, or use the token of a declared agent."
            if agent is not None
            else "This token may not use this store."
        )
        return _json_error("insufficient_scope", description)


def _json_error(error: str, description: str) -> bytes:
    return json.dumps({"error": error, "error_description": description}).encode()


async def _healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


def http_app(store: Store, *, host: str = "127.0.0.1", port: int = 8765) -> ASGIApp:
    """The streamable HTTP app at ``/mcp`` (and an open ``/healthz``), every request
    authenticated by a bearer token from :mod:`accord.credentials`.

    The caller keeps ownership of ``store`` and must close it after the app stops.
    """
    from .server import build_server

    server = build_server(
        store,
        identity=token_identity,
        transport="streamable-http",
        token_verifier=StoreTokenVerifier(store),
        auth=AuthSettings(
            issuer_url=f"http://{host}:{port}",  # type: ignore[arg-type]
            resource_server_url=None,
            required_scopes=[SCOPE],
        ),
    )
    server.custom_route("/healthz", methods=["GET"])(_healthz)
    # Plain JSON answers instead of one SSE stream per POST: no tool sends progress or
    # asks the client anything mid-call, and it saves about a fifth of the server's CPU
    # per call (bench/bench_mcp.py). Clients must accept both (streamable HTTP spec).
    app: Starlette = server.streamable_http_app(
        streamable_http_path="/mcp", host=host, json_response=True
    )
    return ExplainAuthErrors(app, store)
