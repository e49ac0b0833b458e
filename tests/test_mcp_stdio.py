"""`accord mcp --agent NAME` as a real subprocess, through the SDK's stdio client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import accord

from .mcp_helpers import fails, ok, run, server_env, stdio_client

MANIFEST = """
[agents.author]
[agents.critic]

[[resource]]
key = "docs/draft.md"
strategy = "queue"
writer = "author"
submitters = ["critic"]
"""


def test_a_stdio_server_acts_as_its_agent(sqlite_url: str) -> None:
    async def go() -> None:
        async with stdio_client(sqlite_url, "agent-a") as a:
            assert {t.name for t in (await a.list_tools()).tools} >= {"read", "write", "merge"}
            me = await ok(a, "whoami")
            assert me == {"agent": "agent-a", "transport": "stdio", "manifest": None}
            # An argument naming another agent changes nothing: the process is agent-a's.
            written = await ok(a, "write", key="docs/plan.md", value="plan", expect=0,
                               agent="agent-b")
            assert written["author"] == "agent-a"
            doc = await ok(a, "read", key="docs/plan.md")
            assert doc["value"] == "plan" and doc["version"] == 1

    run(go())
    with accord.open(sqlite_url) as store:
        doc = store.session("check").read("docs/plan.md")
        assert (doc.value, doc.author) == ("plan", "agent-a")


def test_two_stdio_agents_on_one_file_lose_nothing(sqlite_url: str) -> None:
    """The lost-update picture, each agent its own `accord mcp` process on one SQLite file."""

    async def go() -> None:
        async with stdio_client(sqlite_url, "agent-a") as a, stdio_client(
            sqlite_url, "agent-b"
        ) as b:
            await ok(a, "write", key="docs/plan.md", value="# plan\n", expect=0)
            seen_a = await ok(a, "read", key="docs/plan.md")
            seen_b = await ok(b, "read", key="docs/plan.md")
            await ok(b, "write", key="docs/plan.md", value=seen_b["value"] + "- b\n",
                     expect=seen_b["version"])
            conflict = await fails(a, "write", key="docs/plan.md",
                                   value=seen_a["value"] + "- a\n", expect=seen_a["version"])
            assert conflict["error"] == "Conflict"
            assert conflict["writers"] == [{"version": 2, "agent": "agent-b"}]
            fresh = await ok(a, "read", key="docs/plan.md")
            await ok(a, "write", key="docs/plan.md", value=fresh["value"] + "- a\n",
                     expect=fresh["version"])

    run(go())
    with accord.open(sqlite_url) as store:
        assert store.session("check").read("docs/plan.md").value == "# plan\n- b\n- a\n"


def test_stdio_enforces_the_manifest(sqlite_url: str, tmp_path: Path) -> None:
    manifest = tmp_path / "accord.toml"
    manifest.write_text(MANIFEST)

    async def go() -> None:
        async with stdio_client(sqlite_url, "critic", str(manifest)) as critic:
            refused = await fails(critic, "write", key="docs/draft.md", value="x", expect=0)
            assert refused["error"] == "NotWriter" and refused["writer"] == "author"
            request = await ok(critic, "submit", key="docs/draft.md", change="a title")
            assert request["status"] == "pending"

    run(go())


def _accord(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_stdio_needs_an_agent(sqlite_url: str) -> None:
    done = _accord("mcp", "--store", sqlite_url)
    assert done.returncode == 1
    assert "accord mcp --agent NAME" in done.stderr and done.stdout == ""


def test_an_undeclared_agent_is_refused_at_start(sqlite_url: str, tmp_path: Path) -> None:
    manifest = tmp_path / "accord.toml"
    manifest.write_text(MANIFEST)
    done = _accord("mcp", "--store", sqlite_url, "--agent", "intruder", "--manifest",
                   str(manifest))
    assert done.returncode == 3
    assert "not declared" in done.stderr and done.stdout == ""
