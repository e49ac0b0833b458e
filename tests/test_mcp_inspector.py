"""A client no one here wrote, in another language: the MCP Inspector CLI (npm).

`@modelcontextprotocol/inspector-cli` (TypeScript, the official SDK) lists the
tools of `accord mcp` and calls read and write, over stdio and over
streamable HTTP with a bearer token. The npm packages are pinned in
tests/node/package-lock.json; .ci/run installs them with `npm ci`, and this
module does too when they are missing. It is skipped only where node is absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .mcp_helpers import add_agent, http_server, server_env

NODE_DIR = Path(__file__).parent / "node"
INSPECTOR = NODE_DIR / "node_modules" / ".bin" / "mcp-inspector-cli"


@pytest.fixture(scope="module")
def inspector() -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed here, so the MCP Inspector CLI (npm) cannot run")
    if not INSPECTOR.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is installed but npm is not: install npm, then npm ci in tests/node")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"npm ci in tests/node failed:\n{done.stdout}\n{done.stderr}")
    return INSPECTOR


def inspect(inspector: Path, *args: str) -> tuple[int, Any, str]:
    """Run the Inspector CLI; return its exit code, the JSON it printed, and all output."""
    done = subprocess.run(
        [str(inspector), "--cli", *args],
        # inspector-cli 1.0.3 finds its own package.json through "../package.json" from
        # the working directory: run it from a directory where that resolves.
        cwd=NODE_DIR / "node_modules",
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    lines = done.stdout.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("{")), None)
    data = json.loads("\n".join(lines[first:])) if first is not None else None
    return done.returncode, data, output


def stdio_target(store_url: str, agent: str) -> list[str]:
    return [sys.executable, "-m", "accord", "mcp", "--agent", agent, "--store", store_url]


def test_the_inspector_lists_the_tools_over_stdio(inspector: Path, sqlite_url: str) -> None:
    code, data, output = inspect(inspector, *stdio_target(sqlite_url, "alice"),
                                 "--method", "tools/list")
    assert code == 0, output
    tools = {t["name"]: t for t in data["tools"]}
    assert {"read", "write", "lease_acquire", "submit", "merge", "check"} <= set(tools)
    assert tools["write"]["inputSchema"]["required"] == ["key", "value", "expect"]
    assert tools["read"]["annotations"]["readOnlyHint"] is True
    assert "outputSchema" in tools["read"]


def test_the_inspector_writes_and_reads_over_stdio(inspector: Path, sqlite_url: str) -> None:
    target = stdio_target(sqlite_url, "alice")

    def call(tool: str, **arguments: str) -> dict[str, Any]:
        args = [*target, "--method", "tools/call", "--tool-name", tool]
        for name, value in arguments.items():
            args += ["--tool-arg", f"{name}={value}"]
        code, data, output = inspect(inspector, *args)
        assert code == 0, output
        result: dict[str, Any] = data
        return result

    written = call("write", key="docs/a.md", value="hello from node", expect="0")
    assert written["isError"] is False
    assert written["structuredContent"]["version"] == 1
    assert written["structuredContent"]["author"] == "alice"
    read = call("read", key="docs/a.md")
    assert read["structuredContent"]["value"] == "hello from node"
    assert read["structuredContent"]["version"] == 1
    # A stale write: a tool error the model can read, with the fields.
    stale = call("write", key="docs/a.md", value="blind", expect="0")
    assert stale["isError"] is True
    assert stale["structuredContent"]["error"] == "Conflict"
    assert stale["structuredContent"]["current"] == 1
    assert "write with expect=1" in stale["content"][0]["text"]


def test_the_inspector_over_http_with_a_token(inspector: Path, sqlite_url: str) -> None:
    token = add_agent(sqlite_url, "alice")
    with http_server(sqlite_url) as server:
        base = [server.url, "--transport", "http"]
        code, data, output = inspect(
            inspector, *base, "--header", f"Authorization: Bearer {token}",
            "--method", "tools/call", "--tool-name", "write",
            "--tool-arg", "key=docs/b.md", "--tool-arg", "value=over http",
            "--tool-arg", "expect=0",
        )
        assert code == 0, output
        assert data["structuredContent"]["author"] == "alice"
        code, data, output = inspect(
            inspector, *base, "--header", f"Authorization: Bearer {token}",
            "--method", "tools/call", "--tool-name", "read", "--tool-arg", "key=docs/b.md",
        )
        assert code == 0, output
        assert data["structuredContent"]["value"] == "over http"
        code, _, output = inspect(inspector, *base, "--method", "tools/list")
        assert code != 0 and "accord agents add NAME" in output
