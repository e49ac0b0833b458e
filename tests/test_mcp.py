"""The MCP tools through the SDK's own client, in process, on every backend.

Each agent gets its own server object (``build_server(store, agent=...)``),
as each stdio agent gets its own ``accord mcp --agent NAME`` process; they
share one store. Transports are tested in test_mcp_stdio.py and
test_mcp_http.py.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

import accord
from accord.mcp import build_server

from .mcp_helpers import call, fails, ok, run

QUEUE_MANIFEST = """
[agents.author]
[agents.critic]
[agents.editor]

[[resource]]
key = "docs/draft.md"
strategy = "queue"
writer = "author"
submitters = ["critic"]

[[resource]]
key = "notes/*"
strategy = "optimistic"
writers = ["author", "critic"]

[[resource]]
key = "status/author"
writer = "author"
"""

EVERY_TOOL = {
    "read", "list", "write", "delete", "lease_acquire", "lease_renew", "lease_release",
    "lease_status", "write_leased", "submit", "request_status", "requests", "accept", "reject",
    "fork", "branch_read", "branch_write", "merge", "log", "check", "plan", "whoami",
}


def clients(store: accord.Store, *agents: str) -> Any:
    """An async context manager yielding one in-process client per agent."""

    class _Clients:
        async def __aenter__(self) -> list[Client]:
            self.stack = AsyncExitStack()
            out = []
            for agent in agents:
                server = build_server(store, agent=agent)
                out.append(await self.stack.enter_async_context(Client(server)))
            return out

        async def __aexit__(self, *exc: object) -> None:
            await self.stack.aclose()

    return _Clients()


def write_manifest(tmp_path: Path, text: str = QUEUE_MANIFEST) -> str:
    path = tmp_path / "accord.toml"
    path.write_text(text)
    return str(path)


# --- the tool list -------------------------------------------------------------------


def test_every_tool_has_a_schema_a_description_and_hints(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            listed = (await a.list_tools()).tools
            by_name = {t.name: t for t in listed}
            assert set(by_name) == EVERY_TOOL  # no write_owned without a manifest
            for tool in listed:
                assert tool.description and len(tool.description) > 40, tool.name
                assert tool.output_schema is not None, tool.name
                assert tool.annotations is not None and tool.annotations.open_world_hint is False
            assert by_name["read"].annotations.read_only_hint is True  # type: ignore[union-attr]
            assert by_name["write"].annotations.destructive_hint is True  # type: ignore[union-attr]
            assert "expect" in by_name["write"].input_schema["required"]
            assert "expect=" in (by_name["write"].description or "")
            # Every tool that changes state takes one (requests only claims a role it
            # already holds on a repeat; see docs/mcp.md).
            mutating = {"write", "delete", "write_leased", "submit", "lease_acquire",
                        "lease_renew", "lease_release", "accept", "reject", "fork",
                        "branch_write", "merge"}
            for name in by_name:
                has = "idempotency_key" in by_name[name].input_schema["properties"]
                assert has == (name in mutating), name

    run(go())


# --- read, write, delete, list ------------------------------------------------------------


def test_read_of_an_absent_key_says_so_with_version_0(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            doc = await ok(a, "read", key="docs/plan.md")
            assert doc["exists"] is False and doc["version"] == 0 and doc["value"] is None
            assert "expect=0" in doc["message"]

    run(go())


def test_the_lost_update_picture_gives_one_conflict_and_loses_nothing(
    open_store: Callable[..., accord.Store],
) -> None:
    store = open_store()
    # The same agent through the Python API, on another Store object: its error is
    # the one the tool must show, word for word.
    python_a = open_store().session("agent-a")

    async def go() -> None:
        async with clients(store, "agent-a", "agent-b") as (a, b):
            await ok(a, "write", key="docs/plan.md", value="# plan\n", expect=0)
            seen_a = await ok(a, "read", key="docs/plan.md")
            seen_b = await ok(b, "read", key="docs/plan.md")
            assert seen_a["version"] == seen_b["version"] == 1
            python_a.read("docs/plan.md")
            await ok(b, "write", key="docs/plan.md", value="# plan\n- from b\n", expect=1)
            conflict = await fails(a, "write", key="docs/plan.md", value="# plan\n- from a\n",
                                   expect=1)
            assert conflict["error"] == "Conflict"
            assert conflict["key"] == "docs/plan.md"
            assert conflict["expected"] == 1 and conflict["current"] == 2
            assert conflict["writers"] == [{"version": 2, "agent": "agent-b"}]
            assert conflict["value"] == "# plan\n- from b\n" and conflict["value_kind"] == "text"
            assert "+- from b" in conflict["diff"]
            assert "write with expect=2" in conflict["message"]
            with pytest.raises(accord.Conflict) as raised:
                python_a.write("docs/plan.md", "# plan\n- from a\n", expect=1)
            assert conflict["message"] == raised.value.message
            # The retry: re-read, redo the change on top, write with the new version.
            fresh = await ok(a, "read", key="docs/plan.md")
            await ok(a, "write", key="docs/plan.md", value=fresh["value"] + "- from a\n",
                     expect=fresh["version"])
            final = await ok(b, "read", key="docs/plan.md")
            assert final["value"] == "# plan\n- from b\n- from a\n" and final["version"] == 3

    run(go())


def test_the_error_text_is_the_python_message(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            result = await a.call_tool("read", {"key": "../etc/passwd"})
            assert result.is_error
            text = result.content[0].text  # type: ignore[union-attr]
            with pytest.raises(accord.InvalidKey) as raised:
                store.session("agent-a").read("../etc/passwd")
            assert text == raised.value.message
            assert result.structured_content == {
                "error": "InvalidKey", "message": text, "key": "../etc/passwd"
            }

    run(go())


def test_json_and_bytes_values_round_trip(store: accord.Store) -> None:
    payload = bytes(range(256))

    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            await ok(a, "write", key="cfg/app.json", value='{"retries": 3, "on": true}',
                     expect=0, kind="json")
            doc = await ok(a, "read", key="cfg/app.json")
            assert doc["kind"] == "json" and doc["value"] == {"retries": 3, "on": True}
            await ok(a, "write", key="blobs/raw", value=base64.b64encode(payload).decode(),
                     expect=0, kind="bytes")
            blob = await ok(a, "read", key="blobs/raw")
            assert blob["kind"] == "bytes" and base64.b64decode(blob["value"]) == payload
            # A text value that looks like JSON stays text.
            await ok(a, "write", key="notes/n.txt", value='{"a": 1}', expect=0)
            note = await ok(a, "read", key="notes/n.txt")
            assert note["kind"] == "text" and note["value"] == '{"a": 1}'
            bad = await fails(a, "write", key="cfg/x", value="{nope", expect=0, kind="json")
            assert bad["error"] == "InvalidValue" and "kind='text'" in bad["message"]
            bad = await fails(a, "write", key="blobs/x", value="not base64!", expect=0,
                              kind="bytes")
            assert bad["error"] == "InvalidValue" and "base64" in bad["message"]
        assert store.session("agent-a").read("blobs/raw").value == payload

    run(go())


def test_delete_needs_the_version(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            await ok(a, "write", key="tmp/x", value="1", expect=0)
            stale = await fails(a, "delete", key="tmp/x", expect=7)
            assert stale["error"] == "Conflict" and stale["current"] == 1
            gone = await ok(a, "delete", key="tmp/x", expect=1)
            assert gone == {"key": "tmp/x", "version": 2, "deleted": True}
            doc = await ok(a, "read", key="tmp/x")
            assert doc["exists"] is False
            again = await ok(a, "write", key="tmp/x", value="2", expect=0)
            assert again["version"] == 3  # versions never repeat

    run(go())


def test_list_shows_keys_and_versions_not_internal_records(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            for i in range(5):
                await ok(a, "write", key=f"docs/{i}.md", value=str(i), expect=0)
            await ok(a, "write", key="other/x", value="x", expect=0)
            await ok(a, "lease_acquire", key="docs/0.md", ttl=30, wait=0)
            listed = await ok(a, "list", prefix="docs/")
            assert [k["key"] for k in listed["keys"]] == [f"docs/{i}.md" for i in range(5)]
            assert all(k["version"] == 1 and k["author"] == "agent-a" for k in listed["keys"])
            assert listed["truncated"] is False
            some = await ok(a, "list", prefix="docs/", limit=2)
            assert some["count"] == 2 and some["truncated"] is True
            everything = await ok(a, "list")
            assert not any(k["key"].startswith(".accord") for k in everything["keys"])
            bad = await fails(a, "list", limit=0)
            assert bad["error"] == "UsageError"

    run(go())


def test_an_idempotency_key_applies_a_write_once(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            first = await ok(a, "write", key="log/x", value="one", expect=0,
                             idempotency_key="req-1")
            again = await ok(a, "write", key="log/x", value="one", expect=0,
                             idempotency_key="req-1")
            assert again["version"] == first["version"] == 1
            other = await fails(a, "write", key="log/x", value="two", expect=1,
                                idempotency_key="req-1")
            assert other["error"] == "IdempotencyMismatch"
        writes = [e for e in store.history(key="log/x") if e.op == "write" and e.outcome == "ok"]
        assert len(writes) == 1

    run(go())


# --- leases ---------------------------------------------------------------------------


def test_a_lease_outlives_the_tool_call_and_fences_others(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a", "agent-b") as (a, b):
            await ok(a, "write", key="docs/spec.md", value="v1", expect=0)
            lease = await ok(a, "lease_acquire", key="docs/spec.md", ttl=60, wait=0)
            assert lease["agent"] == "agent-a" and lease["token"] >= 1
            status = await ok(b, "lease_status", key="docs/spec.md")
            assert [h["agent"] for h in status["holders"]] == ["agent-a"]
            busy = await fails(b, "lease_acquire", key="docs/spec.md", ttl=5, wait=0)
            assert busy["error"] == "LeaseTimeout" and busy["holders"] == ["agent-a"]
            token = lease["token"]
            stolen = await fails(b, "write_leased", key="docs/spec.md", value="b", token=token)
            assert stolen["error"] == "Fenced" and stolen["reason"] == "other-agent"
            not_yours = await fails(b, "lease_release", key="docs/spec.md", token=token)
            assert not_yours["error"] == "UsageError" and "belongs to agent-a" in not_yours[
                "message"]
            written = await ok(a, "write_leased", key="docs/spec.md", value="v2", token=token)
            assert written["version"] == 2
            renewed = await ok(a, "lease_renew", key="docs/spec.md", token=token, ttl=120)
            assert renewed["ttl"] == 120
            await ok(a, "lease_release", key="docs/spec.md", token=token)
            late = await fails(a, "write_leased", key="docs/spec.md", value="v3", token=token)
            assert late["error"] == "Fenced" and late["token"] == token
            twice = await fails(a, "lease_release", key="docs/spec.md", token=token)
            assert twice["error"] == "LeaseLost"
            unknown = await fails(a, "lease_renew", key="docs/spec.md", token=999)
            assert unknown["error"] == "UsageError" and "was ever granted" in unknown["message"]
        assert store.session("agent-a").read("docs/spec.md").value == "v2"

    run(go())


def test_a_lease_lapses_by_ttl_when_its_agent_goes_quiet(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a", "agent-b") as (a, b):
            await ok(a, "write", key="docs/x.md", value="v1", expect=0)
            lease = await ok(a, "lease_acquire", key="docs/x.md", ttl=0.3, wait=0)
            # agent-a goes quiet. agent-b waits in line (the store's own wait) and gets it
            # once the TTL ran out on the store's clock.
            taken = await ok(b, "lease_acquire", key="docs/x.md", ttl=30, wait=30)
            assert taken["token"] > lease["token"]
            late = await fails(a, "write_leased", key="docs/x.md", value="late",
                               token=lease["token"])
            assert late["error"] == "Fenced" and late["holder"] == "agent-b"
            await ok(b, "write_leased", key="docs/x.md", value="v2", token=taken["token"])

    run(go())


def test_lease_waits_are_bounded_per_call(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            too_long = await fails(a, "lease_acquire", key="docs/x.md", wait=3600)
            assert too_long["error"] == "UsageError" and "call again" in too_long["message"]
            negative = await fails(a, "lease_acquire", key="docs/x.md", ttl=-1)
            assert negative["error"] == "UsageError" and "ttl" in negative["message"]
        assert accord.lease_status(store, "docs/x.md").holders == []

    run(go())


# --- the queue, the manifest, write_owned ---------------------------------------------------


def test_queue_submit_decide_and_status(
    open_store: Callable[..., accord.Store], tmp_path: Path
) -> None:
    store = open_store(manifest=write_manifest(tmp_path))

    async def go() -> None:
        async with clients(store, "author", "critic") as (author, critic):
            await ok(author, "write", key="docs/draft.md", value="draft\n", expect=0)
            direct = await fails(critic, "write", key="docs/draft.md", value="x", expect=1)
            assert direct["error"] == "NotWriter" and direct["writer"] == "author"
            assert "submit" in direct["message"]
            first = await ok(critic, "submit", key="docs/draft.md", change="add a conclusion")
            second = await ok(critic, "submit", key="docs/draft.md", change="spam")
            assert first["status"] == "pending" and first["submitter"] == "critic"
            not_writer = await fails(critic, "requests", key="docs/draft.md")
            assert not_writer["error"] == "NotWriter"
            pending = await ok(author, "requests", key="docs/draft.md")
            assert [r["id"] for r in pending["requests"]] == [first["id"], second["id"]]
            assert pending["current_version"] == 1 and pending["current_value"] == "draft\n"
            out_of_order = await fails(author, "reject", key="docs/draft.md",
                                       request_id=second["id"], reason="spam")
            assert out_of_order["error"] == "UsageError" and "oldest first" in out_of_order[
                "message"]
            wrong_key = await fails(author, "accept", key="notes/a", request_id=first["id"],
                                    value="x", expect=1)
            assert wrong_key["error"] == "UsageError" and "docs/draft.md" in wrong_key["message"]
            accepted = await ok(author, "accept", key="docs/draft.md", request_id=first["id"],
                                value="draft\nconclusion\n", expect=1)
            assert accepted["status"] == "accepted" and accepted["version"] == 2
            twice = await fails(author, "accept", key="docs/draft.md", request_id=first["id"],
                                value="again", expect=2)
            assert twice["error"] == "PreconditionFailed" and "already" in twice["message"]
            rejected = await ok(author, "reject", key="docs/draft.md", request_id=second["id"],
                                reason="off topic")
            assert rejected["status"] == "rejected"
            seen = await ok(critic, "request_status", request_id=first["id"], wait=1)
            assert seen["status"] == "accepted" and seen["version"] == 2
            seen = await ok(critic, "request_status", request_id=second["id"])
            assert seen["status"] == "rejected" and seen["reason"] == "off topic"
            missing = await fails(critic, "request_status", request_id="r-nope")
            assert missing["error"] == "NotFound"
            waiting = await ok(critic, "submit", key="docs/draft.md", change="later")
            still = await ok(critic, "request_status", request_id=waiting["id"], wait=0.2)
            assert still["status"] == "pending" and "still pending" in still["message"]
        assert store.session("author").read("docs/draft.md").value == "draft\nconclusion\n"

    run(go())


def test_the_manifest_is_enforced_per_agent(
    open_store: Callable[..., accord.Store], tmp_path: Path
) -> None:
    store = open_store(manifest=write_manifest(tmp_path))
    with pytest.raises(accord.PolicyViolation, match="not declared"):
        build_server(store, agent="intruder")

    async def go() -> None:
        async with clients(store, "author", "critic", "editor") as (author, critic, editor):
            names = {t.name for t in (await critic.list_tools()).tools}
            assert "write_owned" in names
            await ok(critic, "write", key="notes/a", value="x", expect=0)
            refused = await fails(editor, "write", key="notes/b", value="x", expect=0)
            assert refused["error"] == "PolicyViolation" and "editor" in refused["message"]
            mine = await ok(author, "write_owned", key="status/author", value="busy")
            assert mine["version"] == 1
            again = await ok(author, "write_owned", key="status/author", value="idle")
            assert again["version"] == 2
            theirs = await fails(critic, "write_owned", key="status/author", value="hacked")
            assert theirs["error"] == "NotWriter"
            shared = await fails(author, "write_owned", key="notes/a", value="x")
            assert shared["error"] == "PolicyViolation" and "expect" in shared["message"]
            plan = await ok(critic, "plan")
            assert plan["manifest"] and len(plan["plan"]["resources"]) == 3
            me = await ok(editor, "whoami")
            assert me["agent"] == "editor" and me["transport"] == "stdio"
        assert store.session("author").read("status/author").value == "idle"

    run(go())


def test_write_owned_refused_without_a_manifest_says_why(store: accord.Store) -> None:
    # Not listed without a manifest; called anyway (a stale tool list), it refuses.
    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            result = await a.call_tool("write_owned", {"key": "x", "value": "v"})
            assert result.is_error and "no tool 'write_owned'" in result.content[0].text  # type: ignore[union-attr]

    run(go())


# --- branches ---------------------------------------------------------------------------


def test_fork_write_and_merge(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a", "agent-b", "lead") as (a, b, lead):
            await ok(a, "write", key="docs/report.md", value="intro\nbody\nend\n", expect=0)
            ba = await ok(a, "fork", key="docs/report.md")
            bb = await ok(b, "fork", key="docs/report.md")
            assert ba["base_version"] == bb["base_version"] == 1
            await ok(a, "branch_write", key="docs/report.md", branch_id=ba["branch_id"],
                     value="intro by a\nbody\nend\n")
            await ok(b, "branch_write", key="docs/report.md", branch_id=bb["branch_id"],
                     value="intro\nbody\nend by b\n")
            theirs = await fails(a, "branch_write", key="docs/report.md",
                                 branch_id=bb["branch_id"], value="mine now")
            assert theirs["error"] == "NotOwner" and "belongs to agent-b" in theirs[
                "message"]
            read_back = await ok(lead, "branch_read", key="docs/report.md",
                                 branch_id=ba["branch_id"])
            assert read_back["value"] == "intro by a\nbody\nend\n"
            merged = await ok(lead, "merge", key="docs/report.md")
            assert merged["committed"] is True and merged["version"] == 2
            assert merged["value"] == "intro by a\nbody\nend by b\n"
            doc = await ok(lead, "read", key="docs/report.md")
            assert doc["author"] == "lead" and doc["value"] == merged["value"]

    run(go())


def test_merge_conflicts_are_listed_then_settled(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a", "agent-b") as (a, b):
            await ok(a, "write", key="docs/t.md", value="title\n", expect=0)
            ba = await ok(a, "fork", key="docs/t.md")
            bb = await ok(b, "fork", key="docs/t.md")
            await ok(a, "branch_write", key="docs/t.md", branch_id=ba["branch_id"],
                     value="title A\n")
            await ok(b, "branch_write", key="docs/t.md", branch_id=bb["branch_id"],
                     value="title B\n")
            first = await ok(a, "merge", key="docs/t.md")
            assert first["committed"] is False and first["clean"] is False
            assert len(first["conflicts"]) == 1
            conflict = first["conflicts"][0]
            assert set(conflict["sides"]) == {ba["branch_id"], bb["branch_id"]}
            assert (await ok(a, "read", key="docs/t.md"))["version"] == 1  # nothing written
            wrong = await fails(a, "merge", key="docs/t.md", resolutions={"line 99": "x"})
            assert wrong["error"] == "UsageError" and conflict["where"] in wrong["message"]
            bad_side = await fails(a, "merge", key="docs/t.md", prefer="nobody")
            assert bad_side["error"] == "InvalidValue"
            settled = await ok(a, "merge", key="docs/t.md",
                               resolutions={conflict["where"]: bb["branch_id"]})
            assert settled["committed"] is True and settled["value"] == "title B\n"

    run(go())


# --- history, checker, and what never leaks -------------------------------------------------


def test_log_check_and_whoami(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a", "agent-b") as (a, b):
            empty = await fails(a, "check")
            assert empty["error"] == "HistoryFormatError"
            await ok(a, "write", key="k", value="1", expect=0)
            await ok(b, "read", key="k")
            await ok(b, "write", key="k", value="2", expect=1)
            await fails(a, "write", key="k", value="3", expect=1)
            log = await ok(a, "log", key="k", limit=2)
            assert log["count"] == 2
            assert [(e["agent"], e["outcome"]) for e in log["events"]] == [
                ("agent-b", "ok"), ("agent-a", "conflict")]
            checked = await ok(b, "check")
            assert checked["verdict"] == "clean" and "clean" in checked["summary"]
            assert (await ok(b, "whoami"))["agent"] == "agent-b"
            internal = await fails(a, "log", key=".accord/tokens/x")
            assert internal["error"] == "InvalidKey"

    run(go())


def test_an_unexpected_failure_is_a_tool_error_without_traceback(
    store: accord.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Any, key: str) -> Any:
        raise RuntimeError("/secret/path/in/a/traceback")

    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            monkeypatch.setattr(accord.Session, "read", broken)
            result = await a.call_tool("read", {"key": "k"})
            assert result.is_error
            text = result.content[0].text  # type: ignore[union-attr]
            assert "Traceback" not in text and "/secret/path" not in text
            assert result.structured_content["error"] == "InternalError"  # type: ignore[index]
            monkeypatch.undo()
            assert (await ok(a, "read", key="k"))["exists"] is False  # still serving

    run(go())


@pytest.mark.parametrize(
    ("tool", "arguments", "field"),
    [
        ("write", {"key": "k", "value": "v"}, "expect"),
        ("write", {"key": "k", "value": "v", "expect": "three"}, "expect"),
        ("write", {"key": "k", "value": {"a": 1}, "expect": 0}, "value"),
        ("write", {"key": "k", "value": "v", "expect": 0, "kind": "yaml"}, "kind"),
        ("lease_acquire", {"key": "k", "ttl": "forever"}, "ttl"),
        ("read", {}, "key"),
    ],
)
def test_malformed_arguments_say_what_to_send(
    store: accord.Store, tool: str, arguments: dict[str, Any], field: str
) -> None:
    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            error, data = await call(a, tool, **arguments)
            assert error and data["error"] == "UsageError"
            lead = f"Bad arguments for {tool}, nothing was done: {field}"
            assert data["message"].startswith(lead)
            assert f"{tool} takes: key (string)" in data["message"]

    run(go())


def test_waits_over_the_per_call_limit_are_refused(store: accord.Store) -> None:
    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            await ok(a, "write", key="q", value="v", expect=0)
            request = await ok(a, "submit", key="q", change="c")
            too_long = await fails(a, "request_status", request_id=request["id"], wait=600)
            assert too_long["error"] == "UsageError" and "55" in too_long["message"]
            negative = await fails(a, "request_status", request_id=request["id"], wait=-1)
            assert negative["error"] == "UsageError"

    run(go())


def test_every_result_matches_the_advertised_output_schema(store: accord.Store) -> None:
    """Clients (the TypeScript SDK among them) validate structuredContent against the
    output schema, errors included: both shapes must pass."""
    import jsonschema

    async def go() -> None:
        async with clients(store, "agent-a") as (a,):
            schemas = {t.name: t.output_schema for t in (await a.list_tools()).tools}
            calls: list[tuple[str, dict[str, Any]]] = [
                ("write", {"key": "k", "value": "v", "expect": 0}),
                ("write", {"key": "k", "value": "v", "expect": 0}),  # Conflict
                ("write", {"key": "k", "value": "v"}),  # bad arguments
                ("read", {"key": "k"}),
                ("read", {"key": "nope"}),
                ("list", {}),
                ("lease_status", {"key": "k"}),
                ("lease_release", {"key": "k", "token": 5}),
                ("log", {"limit": 5}),
                ("merge", {"key": "k"}),
                ("check", {}),
                ("plan", {}),
            ]
            for tool, arguments in calls:
                result = await a.call_tool(tool, arguments)
                assert result.structured_content is not None
                jsonschema.validate(result.structured_content, schemas[tool])

    run(go())
