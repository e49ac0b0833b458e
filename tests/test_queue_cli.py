"""The queue on the command line: submit, requests, accept, reject."""

from __future__ import annotations

import json

from click.testing import CliRunner

import accord
from accord.cli import cli


def run(url: str, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--store", url], input=input)
    return result.exit_code, result.output


def test_submit_requests_accept_reject(sqlite_url: str) -> None:
    with accord.open(sqlite_url) as store:
        store.session("author").write("draft.md", "hello\n")
    code, out = run(sqlite_url, "submit", "draft.md", "--agent", "critic", input="add a line\n")
    assert code == 0 and "pending" in out
    code, out = run(sqlite_url, "submit", "draft.md", "--agent", "critic", "--json", input="spam\n")
    assert code == 0
    second = json.loads(out)["id"]

    code, out = run(sqlite_url, "requests", "draft.md", "--agent", "author", "--json")
    assert code == 0
    listing = json.loads(out)
    assert listing["version"] == 1 and listing["writer"]["agent"] == "author"
    first = listing["requests"][0]["id"]
    assert [r["change"] for r in listing["requests"]] == ["add a line\n", "spam\n"]

    # Out of order: refused, exit 1.
    code, out = run(sqlite_url, "reject", "draft.md", second, "--agent", "author", "--reason", "x")
    assert code == 1 and "oldest first" in out
    # Another agent may not decide: exit 3 (NotWriter).
    code, out = run(
        sqlite_url, "accept", "draft.md", first, "--agent", "critic", "--expect", "1", input="x"
    )
    assert code == 3 and "NotWriter" in out
    code, out = run(
        sqlite_url,
        "accept",
        "draft.md",
        first,
        "--agent",
        "author",
        "--expect",
        "1",
        input="hello\nadd a line\n",
    )
    assert code == 0 and "v2" in out
    # Deciding twice: exit 3, nothing changed.
    code, out = run(
        sqlite_url, "accept", "draft.md", first, "--agent", "author", "--expect", "2", input="x"
    )
    assert code == 3 and "already accepted" in out
    code, out = run(
        sqlite_url, "reject", "draft.md", second, "--agent", "author", "--reason", "no spam"
    )
    assert code == 0
    code, out = run(sqlite_url, "requests", "draft.md", "--peek")
    assert code == 0 and "0 pending" in out
    with accord.open(sqlite_url) as store:
        assert store.session("x").read("draft.md").value == "hello\nadd a line\n"


def test_request_for_another_key_and_direct_write(sqlite_url: str) -> None:
    code, out = run(sqlite_url, "submit", "a.md", "--agent", "critic", "--json", input="x")
    request_id = json.loads(out)["id"]
    run(sqlite_url, "requests", "b.md", "--agent", "author")
    code, out = run(
        sqlite_url, "accept", "b.md", request_id, "--agent", "author", "--expect", "0", input="x"
    )
    assert code == 1 and "is a request for a.md, not b.md" in out
    run(sqlite_url, "requests", "a.md", "--agent", "author")
    code, out = run(sqlite_url, "write", "a.md", "--agent", "critic", input="direct")
    assert code == 3 and "submit" in out


def test_submit_wait_reports_the_decision(sqlite_url: str) -> None:
    with accord.open(sqlite_url) as store:
        store.session("author").write("k", "")
        store.session("critic").submit("k", "first", idempotency_key="c-1")
        for request in store.session("author").requests("k", timeout=0):
            store.session("author").reject(request, "not now")
    # A replay of the rejected request: the decision comes back, exit 3.
    code, out = run(
        sqlite_url,
        "submit",
        "k",
        "--agent",
        "critic",
        "--idempotency-key",
        "c-1",
        "--wait",
        "5",
        input="first",
    )
    assert code == 3 and "not now" in out
    code, out = run(sqlite_url, "submit", "k", "--agent", "critic", "--wait", "0.05", input="2")
    assert code == 4 and "Timeout" in out
