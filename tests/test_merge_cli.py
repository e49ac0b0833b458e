"""Branches on the command line: fork, branch read|write|list|discard, merge."""

from __future__ import annotations

import json

from click.testing import CliRunner

import accord
from accord.cli import cli


def run(url: str, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--store", url], input=input)
    return result.exit_code, result.output


def _fork(url: str, agent: str, value: str) -> str:
    code, out = run(url, "fork", "doc", "--agent", agent, "--file", "-", "--json", input=value)
    assert code == 0, out
    return str(json.loads(out)["id"])


def test_fork_write_merge_clean(sqlite_url: str) -> None:
    with accord.open(sqlite_url) as store:
        store.session("owner").write("doc", "a\nb\nc\n")
    one = _fork(sqlite_url, "agent-a", "A\nb\nc\n")
    two = _fork(sqlite_url, "agent-b", "a\nb\nC\n")
    code, out = run(sqlite_url, "branch", "list", "doc", "--json")
    assert code == 0 and [b["id"] for b in json.loads(out)] == [one, two]
    code, out = run(sqlite_url, "branch", "read", "doc", one)
    assert code == 0 and out == "A\nb\nc\n"
    code, out = run(sqlite_url, "merge", "doc", "--dry-run", "--agent", "synth")
    assert code == 0 and "cleanly" in out and "nothing written" in out
    code, out = run(sqlite_url, "merge", "doc", "--agent", "synth", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["committed"] and result["version"] == 2 and result["value"] == "A\nb\nC\n"
    code, out = run(sqlite_url, "branch", "list", "doc")
    assert code == 0 and "0 open" in out


def test_merge_conflict_exits_3_and_prefer_settles_it(sqlite_url: str) -> None:
    with accord.open(sqlite_url) as store:
        store.session("owner").write("doc", "a\nb\n")
    one = _fork(sqlite_url, "agent-a", "a\nB1\n")
    _fork(sqlite_url, "agent-b", "a\nB2\n")
    code, out = run(sqlite_url, "merge", "doc", "--agent", "synth")
    assert code == 3
    assert "line 2" in out and "B1" in out and "B2" in out and "base" in out
    code, out = run(sqlite_url, "merge", "doc", "--agent", "synth", "--json")
    assert code == 3 and json.loads(out)["conflicts"][0]["where"] == "line 2"
    with accord.open(sqlite_url) as store:
        assert store.session("x").read("doc").version == 1
    code, out = run(sqlite_url, "merge", "doc", "--agent", "synth", "--prefer", one)
    assert code == 0 and "committed doc v2" in out
    with accord.open(sqlite_url) as store:
        assert store.session("x").read("doc").value == "a\nB1\n"


def test_branch_write_and_discard_and_bad_input(sqlite_url: str) -> None:
    with accord.open(sqlite_url) as store:
        store.session("owner").write("doc", "a\n")
        store.session("owner").write("other", "o\n")
    one = _fork(sqlite_url, "agent-a", "a\n")
    # The branch's owner writes and discards it (an agent is required: issue 11, item 14).
    code, out = run(sqlite_url, "branch", "write", "doc", one, input="a\nmore\n")
    assert code == 1 and "agent" in out.lower()
    code, out = run(
        sqlite_url, "branch", "write", "doc", one, "--agent", "agent-a", input="a\nmore\n"
    )
    assert code == 0
    code, out = run(sqlite_url, "branch", "read", "doc", one)
    assert out == "a\nmore\n"
    code, out = run(sqlite_url, "branch", "read", "other", one)
    assert code == 3 and "No branch" in out
    code, out = run(sqlite_url, "fork", "missing", "--agent", "a")
    assert code == 3 and "Create it first" in out
    code, out = run(sqlite_url, "branch", "discard", "doc", one, "--agent", "agent-a")
    assert code == 0
    code, out = run(sqlite_url, "merge", "doc", one, "--agent", "synth")
    assert code == 3 and "discarded" in out
    code, out = run(sqlite_url, "merge", "doc", "--agent", "synth")
    assert code == 1 and "Nothing to merge" in out


def test_branch_write_and_discard_by_another_agent_are_refused(sqlite_url: str) -> None:
    """issue 11, item 14: any agent could `branch write` another agent's branch."""
    with accord.open(sqlite_url) as store:
        store.session("owner").write("doc", "a\n")
    mine = _fork(sqlite_url, "agent-a", "a\nA\n")
    code, out = run(sqlite_url, "branch", "write", "doc", mine, "--agent", "agent-b", input="b\n")
    assert code == 3 and "NotOwner" in out and "belongs to agent-a" in out
    code, out = run(sqlite_url, "branch", "discard", "doc", mine, "--agent", "agent-b")
    assert code == 3 and "NotOwner" in out
    code, out = run(sqlite_url, "branch", "read", "doc", mine)
    assert code == 0 and out == "a\nA\n"
    code, out = run(sqlite_url, "branch", "write", "doc", mine, "--agent", "agent-a", input="a\n")
    assert code == 0, out


def test_fork_prints_only_the_branch_id(sqlite_url: str) -> None:
    """`ID=$(accord fork k)` works: stdout is the id alone (issue 11 item 13)."""
    with accord.open(sqlite_url) as store:
        store.session("owner").write("doc", "a\n")
    result = CliRunner().invoke(
        cli, ["fork", "doc", "--agent", "agent-a", "--store", sqlite_url]
    )
    assert result.exit_code == 0, result.output
    branch_id = result.stdout.strip()
    assert result.stdout == branch_id + "\n" and " " not in branch_id
    assert "forked doc v1" in result.stderr
    code, out = run(sqlite_url, "branch", "read", "doc", branch_id)
    assert code == 0 and out == "a\n"


def test_prefer_says_what_it_dropped(sqlite_url: str) -> None:
    """A merge settled by --prefer is not 'merged cleanly' (issue 11 item 14)."""
    with accord.open(sqlite_url) as store:
        store.session("owner").write("doc", "a\nb\nc\n")
    kept = _fork(sqlite_url, "agent-a", "a\nB1\nc\n")
    lost = _fork(sqlite_url, "agent-b", "a\nB2\nc\n")
    code, out = run(sqlite_url, "merge", "doc", "--agent", "synth", "--prefer", kept, "--dry-run")
    assert code == 0, out
    assert "cleanly" not in out
    assert f"DROPPED the change(s) of {lost}" in out
    assert "settled at line 2" in out
    assert f"{kept} (kept):\n    B1" in out and f"{lost} (dropped):\n    B2" in out
    code, out = run(sqlite_url, "merge", "doc", "--agent", "synth", "--prefer", kept, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["committed"] and data["resolved"] == 1
    (dropped,) = data["dropped"]
    assert dropped["kept"] == kept and dropped["dropped"] == [lost]
    assert dropped["sides"][lost] == "B2\n" and dropped["where"] == "line 2"


def test_python_merge_report_does_not_call_a_settled_merge_clean(sqlite_url: str) -> None:
    with accord.open(sqlite_url) as store:
        store.session("owner").write("doc", "a\n")
        one = store.session("a").fork("doc")
        one.write("A\n")
        two = store.session("b").fork("doc")
        two.write("B\n")
        merged = store.merge("doc", [one, two], resolve=lambda c: c.take(one.id))
        assert merged.clean
        assert "cleanly" not in merged.report() and "settled 1 conflict" in merged.report()
