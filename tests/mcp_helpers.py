"""Shared by the MCP tests and bench/bench_mcp.py: real servers, real clients.

``http_server`` runs ``accord mcp --http`` as a subprocess on a free port of
127.0.0.1 and waits (bounded) until it answers; ``http_client`` is the MCP
SDK's own client with a bearer token; ``stdio_params`` launches
``accord mcp --agent NAME`` for the SDK's stdio client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

import accord
from accord import credentials

T = TypeVar("T")

START_TIMEOUT = 60.0
CALL_TIMEOUT = 60.0


def run(coro: Awaitable[T], timeout: float = 240.0) -> T:
    """Run ``coro`` to completion in a fresh event loop, bounded by ``timeout`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env.update(extra)
    return env


def add_agent(store_url: str, name: str, manifest: str | None = None) -> str:
    """Create ``name``'s credential in the store at ``store_url``; return its token."""
    with accord.open(store_url, manifest=manifest) as store:
        return credentials.add(store, name)[1]


@dataclass
class HttpServer:
    """A running ``accord mcp --http`` process."""

    store_url: str
    port: int
    manifest: str | None = None
    log: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    module: str = "accord"  # what ``python -m`` runs: a test may wrap the CLI
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        args = [sys.executable, "-m", self.module, "mcp", "--http", "--port", str(self.port),
                "--store", self.store_url]
        if self.manifest:
            args += ["--manifest", self.manifest]
        if self.log is not None:
            # The child keeps its own descriptor: the parent's copy closes at once.
            with self.log.open("ab") as out:
                self.proc = subprocess.Popen(args, env=server_env(**self.env), stdout=out,
                                             stderr=out)
        else:
            self.proc = subprocess.Popen(
                args, env=server_env(**self.env), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"accord mcp --http exited with {self.proc.returncode}"
                    + (f": {self.log.read_text()[-2000:]}" if self.log else "")
                )
            try:
                health = httpx2.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                if health.status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"accord mcp --http did not answer within {START_TIMEOUT:g} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


@contextlib.contextmanager
def http_server(
    store_url: str, *, manifest: str | None = None, log: Path | None = None
) -> Iterator[HttpServer]:
    server = HttpServer(store_url, free_port(), manifest, log)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def http_client(url: str, token: str | None, **kwargs: Any) -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP, sending ``token`` as a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    # The transport leaves an http client it was given open: close it here.
    async with create_mcp_http_client(headers=headers) as http:
        client = Client(
            streamable_http_client(url, http_client=http),
            read_timeout_seconds=CALL_TIMEOUT,
            **kwargs,
        )
        async with client:
            yield client


def stdio_params(store_url: str, agent: str, manifest: str | None = None) -> StdioServerParameters:
    args = ["-m", "accord", "mcp", "--agent", agent, "--store", store_url]
    if manifest:
        args += ["--manifest", manifest]
    return StdioServerParameters(command=sys.executable, args=args, env=server_env())


def stdio_client(store_url: str, agent: str, manifest: str | None = None) -> Client:
    return Client(stdio_params(store_url, agent, manifest), read_timeout_seconds=CALL_TIMEOUT)


async def call(client: Client, tool: str, **arguments: Any) -> tuple[bool, dict[str, Any]]:
    """Call ``tool``; return (is_error, structured content)."""
    result = await client.call_tool(tool, arguments)
    data = result.structured_content
    assert data is not None, f"{tool} returned no structured content: {result.content}"
    return bool(result.is_error), data


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call ``tool`` and expect success; return its structured content."""
    error, data = await call(client, tool, **arguments)
    assert not error, f"{tool}({arguments}) failed: {data}"
    return data


async def fails(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call ``tool`` and expect a tool error; return its structured content."""
    error, data = await call(client, tool, **arguments)
    assert error, f"{tool}({arguments}) should have failed, got {data}"
    return data
