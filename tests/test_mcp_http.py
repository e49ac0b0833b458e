"""`accord mcp --http` as a real subprocess on 127.0.0.1, with bearer tokens.

401 without a live token, 403 for an agent the manifest does not declare,
the agent always the token's, revocation on the next request; the
lost-update picture with two agent processes; 8 clients x 50 appends to one
key with nothing lost and a history that passes `accord check`.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest

import accord

from .mcp_helpers import (
    HttpServer,
    add_agent,
    fails,
    free_port,
    http_client,
    http_server,
    ok,
    run,
    server_env,
)

MANIFEST = """
[agents.author]
[agents.critic]

[[resource]]
key = "docs/draft.md"
strategy = "queue"
writer = "author"
submitters = ["critic"]
"""

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}


def post(url: str, token: str | None) -> httpx2.Response:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.post(url, json=INITIALIZE, headers=headers, timeout=30)


def _accord(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "accord", *args], env=server_env(),
                          capture_output=True, text=True, timeout=60)


# --- who is calling ---------------------------------------------------------------------


def test_no_live_token_gets_401_and_says_what_to_do(sqlite_url: str, tmp_path: Path) -> None:
    token = add_agent(sqlite_url, "alice")
    with http_server(sqlite_url, log=tmp_path / "server.log") as server:
        for bad in (None, "nonsense", "accord_0123456789abcdef_" + "x" * 43, token + "x"):
            answer = post(server.url, bad)
            assert answer.status_code == 401, bad
            assert answer.headers["www-authenticate"].startswith("Bearer")
            body = answer.json()
            assert body["error"] == "invalid_token"
            assert "Authorization: Bearer <token>" in body["error_description"]
            assert "accord agents add NAME" in body["error_description"]
        assert post(server.url, token).status_code == 200

        async def sdk_without_token() -> None:
            async with http_client(server.url, None) as anonymous:
                await anonymous.call_tool("whoami", {})

        with pytest.raises(BaseException):  # noqa: B017 - the SDK raises an ExceptionGroup
            run(sdk_without_token(), 60)
    assert token not in (tmp_path / "server.log").read_text()


def test_the_agent_is_the_tokens_whatever_the_arguments_say(sqlite_url: str) -> None:
    alice, bob = add_agent(sqlite_url, "alice"), add_agent(sqlite_url, "bob")
    with http_server(sqlite_url) as server:

        async def go() -> None:
            async with http_client(server.url, alice) as a, http_client(server.url, bob) as b:
                assert (await ok(a, "whoami"))["agent"] == "alice"
                assert (await ok(b, "whoami", agent="alice"))["agent"] == "bob"
                written = await ok(b, "write", key="k", value="v", expect=0, agent="alice",
                                   author="alice")
                assert written["author"] == "bob"
                lease = await ok(a, "lease_acquire", key="k", ttl=30, wait=0)
                stolen = await fails(b, "write_leased", key="k", value="x", token=lease["token"])
                assert stolen["error"] == "Fenced" and stolen["reason"] == "other-agent"
                release = await fails(b, "lease_release", key="k", token=lease["token"])
                assert "belongs to alice" in release["message"]

        run(go())
    with accord.open(sqlite_url) as store:
        assert [(e.op, e.agent) for e in store.history(key="k") if e.op == "write"] == [
            ("write", "bob"), ("write", "bob")]  # the second one, fenced, is bob's too


def test_a_manifest_gives_403_to_undeclared_agents_and_enforces_the_rest(
    sqlite_url: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "accord.toml"
    manifest.write_text(MANIFEST)
    intruder = add_agent(sqlite_url, "intruder")  # made before the manifest existed
    author = add_agent(sqlite_url, "author", str(manifest))
    critic = add_agent(sqlite_url, "critic", str(manifest))
    with http_server(sqlite_url, manifest=str(manifest)) as server:
        refused = post(server.url, intruder)
        assert refused.status_code == 403
        assert "'intruder' is not declared" in refused.json()["error_description"]
        assert post(server.url, critic).status_code == 200

        async def go() -> None:
            async with http_client(server.url, author) as a, http_client(server.url, critic) as c:
                await ok(a, "write", key="docs/draft.md", value="draft", expect=0)
                direct = await fails(c, "write", key="docs/draft.md", value="x", expect=1)
                assert direct["error"] == "NotWriter"
                request = await ok(c, "submit", key="docs/draft.md", change="more")
                await ok(a, "requests", key="docs/draft.md")
                await ok(a, "accept", key="docs/draft.md", request_id=request["id"],
                         value="draft, more", expect=1)
                decided = await ok(c, "request_status", request_id=request["id"], wait=5)
                assert decided["status"] == "accepted"

        run(go())


def test_revocation_and_rotation_count_on_the_next_request(sqlite_url: str) -> None:
    token = add_agent(sqlite_url, "alice")
    with http_server(sqlite_url) as server:

        async def revoked_mid_session() -> None:
            async with http_client(server.url, token) as a:
                await ok(a, "write", key="k", value="1", expect=0)
                # Another process revokes: the very next request is refused.
                done = _accord("agents", "revoke", "alice", "--store", sqlite_url)
                assert done.returncode == 0, done.stderr
                with pytest.raises(Exception):  # noqa: B017 - HTTP 401 under the SDK
                    await a.call_tool("write", {"key": "k", "value": "2", "expect": 1})

        run(revoked_mid_session(), 60)
        assert post(server.url, token).status_code == 401
        added = _accord("agents", "add", "alice", "--store", sqlite_url)
        old = added.stdout.strip()
        rotated = _accord("agents", "rotate", "alice", "--store", sqlite_url, "--json")
        new = json.loads(rotated.stdout)["token"]
        assert post(server.url, old).status_code == 401
        assert post(server.url, new).status_code == 200
    with accord.open(sqlite_url) as store:
        assert store.session("check").read("k").value == "1"


def test_a_non_loopback_address_needs_a_credential(sqlite_url: str, tmp_path: Path) -> None:
    port = free_port()
    refused = _accord("mcp", "--http", "--host", "0.0.0.0", "--port", str(port), "--store",
                      sqlite_url)
    assert refused.returncode == 1
    assert "Refusing to listen on 0.0.0.0" in refused.stderr
    assert "accord agents add NAME" in refused.stderr
    token = add_agent(sqlite_url, "alice")
    server = HttpServer(sqlite_url, port, log=tmp_path / "server.log")
    args = [sys.executable, "-m", "accord", "mcp", "--http", "--host", "0.0.0.0", "--port",
            str(port), "--store", sqlite_url]
    with (tmp_path / "server.log").open("wb") as log:
        server.proc = subprocess.Popen(args, env=server_env(), stdout=log, stderr=log)
    try:
        _wait_healthy(port, server.proc)
        assert post(f"http://127.0.0.1:{port}/mcp", token).status_code == 200
        assert "TLS" in (tmp_path / "server.log").read_text()
    finally:
        server.stop()


def _wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server did not answer within 60 s")


def test_http_and_agent_do_not_mix(sqlite_url: str) -> None:
    done = _accord("mcp", "--http", "--agent", "alice", "--store", sqlite_url)
    assert done.returncode == 1 and "bearer token" in done.stderr


# --- the lost update, with two agent processes --------------------------------------------


def agent_process(url: str, token: str, line: str, barrier: Any, results: Any) -> None:
    """One agent: read the document, wait for the other, write with the version read;
    on a conflict, re-read and redo the change."""

    async def go() -> dict[str, Any]:
        async with http_client(url, token) as client:
            seen = await ok(client, "read", key="docs/plan.md")
            barrier.wait(timeout=60)
            first = await client.call_tool(
                "write",
                {"key": "docs/plan.md", "value": seen["value"] + line, "expect": seen["version"]},
            )
            outcome: dict[str, Any] = {"conflict": bool(first.is_error),
                                       "error": (first.structured_content or {}).get("error")}
            if first.is_error:
                fresh = await ok(client, "read", key="docs/plan.md")
                await ok(client, "write", key="docs/plan.md", value=fresh["value"] + line,
                         expect=fresh["version"])
            return outcome

    results.put(asyncio.run(go()))


def test_two_agent_processes_get_one_conflict_and_lose_nothing(sqlite_url: str) -> None:
    tokens = {name: add_agent(sqlite_url, name) for name in ("agent-a", "agent-b")}
    with accord.open(sqlite_url) as store:
        store.session("lead").write("docs/plan.md", "# plan\n", expect=0)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    with http_server(sqlite_url) as server:
        procs = [
            ctx.Process(target=agent_process,
                        args=(server.url, tokens[name], f"- {name}\n", barrier, results))
            for name in tokens
        ]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
    assert sorted(o["conflict"] for o in outcomes) == [False, True]
    assert [o["error"] for o in outcomes if o["conflict"]] == ["Conflict"]
    with accord.open(sqlite_url) as store:
        final = store.session("lead").read("docs/plan.md").value
    assert final.startswith("# plan\n")
    assert sorted(final.splitlines()[1:]) == ["- agent-a", "- agent-b"]


# --- 8 clients x 50 appends -------------------------------------------------------------------

CLIENTS = 8
APPENDS = 50


async def _append_rounds(url: str, tokens: list[str]) -> int:
    """Every client appends its line APPENDS times; each round starts with all of them
    reading the same version, so every round is a real race. Returns the conflicts seen."""
    barrier = asyncio.Barrier(len(tokens))
    conflicts = 0

    async def agent(index: int, token: str) -> None:
        nonlocal conflicts
        async with http_client(url, token) as client:
            for n in range(APPENDS):
                line = f"agent-{index} {n}\n"
                seen = await ok(client, "read", key="log/shared.txt")
                await barrier.wait()
                while True:
                    result = await client.call_tool(
                        "write",
                        {"key": "log/shared.txt", "value": seen["value"] + line,
                         "expect": seen["version"]},
                    )
                    if not result.is_error:
                        break
                    assert (result.structured_content or {}).get("error") == "Conflict"
                    conflicts += 1
                    seen = await ok(client, "read", key="log/shared.txt")

    await asyncio.gather(*(agent(i, t) for i, t in enumerate(tokens)))
    return conflicts


@pytest.mark.slow
def test_eight_clients_append_fifty_times_and_nothing_is_lost(
    sqlite_url: str, tmp_path: Path
) -> None:
    tokens = [add_agent(sqlite_url, f"agent-{i}") for i in range(CLIENTS)]
    with accord.open(sqlite_url) as store:
        store.session("lead").write("log/shared.txt", "", expect=0)
    with http_server(sqlite_url) as server:
        conflicts = run(_append_rounds(server.url, tokens), 600)
    with accord.open(sqlite_url) as store:
        final = store.session("lead").read("log/shared.txt").value
    lines = final.splitlines()
    expected = {f"agent-{i} {n}" for i in range(CLIENTS) for n in range(APPENDS)}
    assert len(lines) == CLIENTS * APPENDS and set(lines) == expected
    assert conflicts >= (CLIENTS - 1) * APPENDS  # every round raced
    history = tmp_path / "history.jsonl"
    exported = _accord("export", str(history), "--store", sqlite_url)
    assert exported.returncode == 0, exported.stderr
    checked = _accord("check", str(history))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "clean" in checked.stdout


def test_the_same_workload_with_blind_writes_loses_updates(sqlite_url: str, tmp_path: Path) -> None:
    """The unsafe baseline: the same rounds, written blindly (what a store without
    versions does). Updates are lost, and the checker names them: the test above can fail."""
    with accord.open(sqlite_url) as store:
        store.session("lead").write("log/shared.txt", "", expect=0)
        barrier = threading.Barrier(CLIENTS)
        rounds = 5

        def agent(index: int) -> None:
            session = store.session(f"agent-{index}")
            for n in range(rounds):
                seen = session.read("log/shared.txt")
                barrier.wait(timeout=60)
                session.write("log/shared.txt", seen.value + f"agent-{index} {n}\n", force=True)
                barrier.wait(timeout=60)

        threads = [threading.Thread(target=agent, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        final = store.session("lead").read("log/shared.txt").value.splitlines()
        assert len(final) == rounds  # one line per round survived; 7 of 8 were erased
        store.export_history(tmp_path / "history.jsonl")
    checked = _accord("check", str(tmp_path / "history.jsonl"))
    assert checked.returncode == 5 and "lost-update" in checked.stdout


def test_sigterm_stops_the_server_in_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    token = add_agent(url, "alice")
    server = HttpServer(url, free_port(), log=tmp_path / "server.log")
    server.start()
    assert post(server.url, token).status_code == 200
    server.stop()
    assert server.proc is not None and server.proc.returncode == 0
    # The store was closed: SQLite folded its write-ahead log back into the file.
    assert not (tmp_path / "state.db-wal").exists()
