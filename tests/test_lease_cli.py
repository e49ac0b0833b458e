"""accord lease acquire | renew | release | status, and write --lease, via CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import accord
from accord.cli import cli


def run(url: str, *args: str, agent: str = "agent-a", stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--store", url, "--agent", agent], input=stdin)
    return result.exit_code, result.output


def test_acquire_write_renew_release(sqlite_url: str) -> None:
    code, out = run(sqlite_url, "lease", "acquire", "docs/plan.md", "--ttl", "60", "--json")
    assert code == 0, out
    granted = json.loads(out)
    assert granted["token"] == 1 and granted["mode"] == "exclusive"
    assert granted["expires"].endswith("Z")
    code, out = run(sqlite_url, "write", "docs/plan.md", "--lease", "1", stdin="v1")
    assert code == 0, out
    code, out = run(sqlite_url, "lease", "renew", "docs/plan.md", "--token", "1", "--ttl", "90",
                    "--json")
    assert code == 0 and json.loads(out)["expires"] > granted["expires"]
    code, out = run(sqlite_url, "lease", "status", "docs/plan.md")
    assert code == 0 and "agent-a" in out and "held" in out
    code, out = run(sqlite_url, "lease", "release", "docs/plan.md", "--token", "1")
    assert code == 0 and "released token 1" in out
    # The old token is fenced now: exit code 4, nothing written.
    code, out = run(sqlite_url, "write", "docs/plan.md", "--lease", "1", stdin="late")
    assert code == 4 and "was released" in out
    with accord.open(sqlite_url) as store:
        assert store.session("x").read("docs/plan.md").value == "v1"


def test_human_output_prints_token_and_expiry(sqlite_url: str) -> None:
    code, out = run(sqlite_url, "lease", "acquire", "k", "--ttl", "30")
    assert code == 0 and "token 1 on k" in out and "expires 20" in out


def test_busy_key_and_bad_input_exit_codes(sqlite_url: str) -> None:
    assert run(sqlite_url, "lease", "acquire", "k", "--ttl", "60")[0] == 0
    code, out = run(sqlite_url, "lease", "acquire", "k", "--wait", "0", agent="agent-b")
    assert code == 4 and "LeaseTimeout" in out and "held by agent-a" in out
    code, out = run(sqlite_url, "lease", "release", "k", "--token", "1", agent="agent-b")
    assert code == 1 and "belongs to agent-a" in out
    code, out = run(sqlite_url, "lease", "renew", "other", "--token", "1")
    assert code == 1 and "ever granted on other" in out
    code, out = run(sqlite_url, "lease", "acquire", "k2", "--ttl", "-5")
    assert code == 1 and "out of range" in out
    code, out = run(sqlite_url, "lease", "acquire", "k2", "--ttl", "1e12")
    assert code == 1 and "out of range" in out
    code, out = run(sqlite_url, "lease", "acquire", "k2", "--wait", "-1")
    assert code == 1 and "out of range" in out
    assert run(sqlite_url, "lease", "release", "k", "--token", "1")[0] == 0
    code, out = run(sqlite_url, "lease", "release", "k", "--token", "1")
    assert code == 4 and "LeaseLost" in out
    code, out = run(sqlite_url, "lease", "status", "k", "--json")
    assert code == 0 and json.loads(out)["holders"] == []


def test_renewing_an_expired_lease_fails(sqlite_url: str, tmp_path: Path) -> None:
    with accord.open(sqlite_url) as store:
        lease = store.session("agent-a").acquire("k", ttl=0.05)
        while store.backend.now() <= lease.expires:
            store.backend.wait([], [], store.revision(), 0.01)
    code, out = run(sqlite_url, "lease", "renew", "k", "--token", str(lease.token))
    assert code == 4 and "expired" in out


def test_lease_commands_are_documented() -> None:
    result = CliRunner().invoke(cli, ["lease", "--help"])
    assert result.exit_code == 0
    for name in ("acquire", "renew", "release", "status"):
        assert name in result.output
    docs = (Path(__file__).parents[1] / "docs" / "leases.md").read_text()
    for name in ("lease acquire", "lease renew", "lease release", "lease status", "--lease"):
        assert name in docs


def test_the_issue_repro_a_lease_excludes_other_writers(sqlite_url: str) -> None:
    """issue 11, item 1: B's `write --expect 1` while A holds the lease was
    accepted, and A's leased write then erased it. Now B exits 4 (LeaseHeld)
    with the holder, token, deadline and how to wait, and loses nothing."""
    assert run(sqlite_url, "write", "d", agent="A", stdin="base\n")[0] == 0
    assert run(sqlite_url, "lease", "acquire", "d", agent="A")[0] == 0
    code, out = run(sqlite_url, "write", "d", "--expect", "1", agent="B", stdin="base\nB\n")
    assert code == 4, out
    assert "LeaseHeld" in out and "A holds an exclusive lease on it (token 1)" in out
    assert "store clock" in out and "accord lease acquire d --wait" in out
    code, out = run(sqlite_url, "write", "d", "--force", agent="B", stdin="blind\n")
    assert code == 4 and "LeaseHeld" in out
    code, out = run(sqlite_url, "delete", "d", "--force", agent="B")
    assert code == 4 and "LeaseHeld" in out
    # Two successive leased writes by the holder, each a new process that read nothing.
    assert run(sqlite_url, "write", "d", "--lease", "1", agent="A", stdin="base\nA\n")[0] == 0
    assert run(sqlite_url, "write", "d", "--lease", "1", agent="A", stdin="base\nA2\n")[0] == 0
    code, out = run(sqlite_url, "delete", "d", "--lease", "1", agent="A")
    assert code == 0, out
    with accord.open(sqlite_url) as store:
        events = [e for e in store.history(key="d") if e.op in ("write", "delete")]
    assert [(e.agent, e.outcome) for e in events] == [
        ("A", "ok"),
        ("B", "fenced"),
        ("B", "fenced"),
        ("B", "fenced"),
        ("A", "ok"),
        ("A", "ok"),
        ("A", "ok"),
    ]
