"""accord as an MCP server, for agents that call tools instead of importing accord.

``accord mcp --agent NAME`` serves one agent over stdio; ``accord mcp --http``
serves many over streamable HTTP, each request's agent taken from its bearer
token (:mod:`accord.credentials`). :func:`build_server` builds the server
over a store; :func:`accord.mcp.auth.http_app` the authenticated HTTP app.
Needs the ``mcp`` extra: ``pip install 'accord[mcp]'``. See docs/mcp.md.
"""

from __future__ import annotations

from .server import MAX_WAIT, build_server, error_result

__all__ = ["MAX_WAIT", "build_server", "error_result"]
