"""Messages on the command line use the command line's words (issue 11 item 11).

Every error a command prints is rendered for the command line: `--expect 0`,
`--force`, `--wait`, `accord branch list K`, never Python's `expect=0`,
`force=True`, `wait=` or `store.branches('k')`. The cases below provoke the
errors a user meets; each output is scanned for Python's words.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import accord
from accord.cli import cli
from accord.errors import SURFACES, UsageError, call, option, render, var

MANIFEST = Path(__file__).parent / "manifests" / "enforce.toml"

PYTHONISMS = re.compile(
    r"\b(expect|force|wait|ttl|mode|lease|timeout|lenient|resolve|idempotency_key|"
    r"record_reads|max_value_size|manifest|retries|backoff)=|"
    r"\b(store|session|accord|req|lease|b|request)\.[a-z_]+\(|"
    r"\b(write|read|update|delete|submit|fork|merge|acquire|release|renew|requests|"
    r"accept|reject|serve|branches|lease_all|export_history|check)\(|"
    r"\bwith\s+\w+\.lease\b|\b[a-z_]+\(\)"
)


def pythonisms(text: str) -> list[str]:
    return [m.group(0) for m in PYTHONISMS.finditer(text)]


def test_the_scanner_finds_python_words() -> None:
    for text in (
        "write with expect=0",
        "pass force=True",
        "store.branches('k')",
        "use update(key, fn)",
        "wait=10",
        "req.wait() gives it",
        "with session.lease('k') as lease",
    ):
        assert pythonisms(text), text
    assert not pythonisms("accord write k --expect 0; accord branch list k; --wait 10")


def test_one_message_two_renderings() -> None:
    message = (
        f"Create it with {call('write', 'docs/a.md', var('value'), expect=0)}, or write "
        f"blindly with {option('force')}; its branches: {call('store.branches', 'docs/a.md')}."
    )
    assert render(message) == (
        "Create it with write('docs/a.md', value, expect=0), or write blindly with "
        "force=True; its branches: store.branches('docs/a.md')."
    )
    assert render(message, "cli") == (
        "Create it with accord write docs/a.md --expect 0, or write blindly with --force; "
        "its branches: accord branch list docs/a.md."
    )
    assert render(message, "mcp") == render(message)
    exc = UsageError(message)
    assert str(exc) == exc.message == render(message)
    assert exc.render("cli") == render(message, "cli")
    assert "mcp" in SURFACES


def _setup(url: str, tmp: Path) -> dict[str, str]:
    with accord.open(url) as store:
        a = store.session("agent-a")
        a.write("k", "v1\n")
        a.write("held", "x\n")
        a.acquire("held", ttl=120, wait=0)
        a.write("doc", "a\nb\n")
        one = a.fork("doc")
        one.write("a\nB1\n")
        two = store.session("agent-b").fork("doc")
        two.write("a\nB2\n")
        a.write("q", "base\n")
        store.session("writer").submit("q", "change\n")
    bad_history = tmp / "bad.jsonl"
    bad_history.write_text('{"agent": "a", "op": "write"}\nnot json\n')
    return {"branch": one.id, "history": str(bad_history)}


# Messages written in session.py and strategies/, which another change is
# rewriting now (issue 11 items 1-4, 8, 10): they move to the markup once it
# has landed. strict: a case that starts passing must lose its mark.
LATER = pytest.mark.xfail(
    strict=True, reason="message in session.py or strategies/, converted after fix-core lands"
)

CASES = [
    pytest.param(["write", "k", "--agent", "agent-b"], id="precondition-required", marks=LATER),
    pytest.param(["write", "k", "--expect", "7", "--agent", "agent-b"], id="conflict", marks=LATER),
    pytest.param(
        ["write", "new", "--expect", "3", "--agent", "b"], id="conflict-absent", marks=LATER
    ),
    pytest.param(
        ["write", "k", "--expect", "0", "--agent", "b"], id="conflict-create", marks=LATER
    ),
    pytest.param(["delete", "k", "--agent", "agent-b"], id="delete-unguarded", marks=LATER),
    pytest.param(["read", "nope"], id="not-found", marks=LATER),
    pytest.param(
        ["lease", "acquire", "held", "--wait", "0", "--agent", "b"], id="lease-timeout", marks=LATER
    ),
    pytest.param(["fork", "nope", "--agent", "agent-b"], id="fork-absent", marks=LATER),
    pytest.param(["branch", "read", "doc", "b-nope"], id="no-branch", marks=LATER),
    pytest.param(["merge", "k", "--agent", "synth"], id="nothing-to-merge", marks=LATER),
    pytest.param(
        ["accept", "q", "r-nope", "--expect", "1", "--agent", "writer"],
        id="no-request",
        marks=LATER,
    ),
    pytest.param(["write", "bad//key", "--agent", "agent-b"], id="invalid-key"),
    pytest.param(["write", "k", "--lease", "99", "--agent", "agent-b"], id="not-a-lease"),
    pytest.param(["lease", "release", "held", "--token", "99", "--agent", "b"], id="release"),
    pytest.param(["lease", "renew", "held", "--token", "99", "--agent", "b"], id="renew"),
    pytest.param(["branch", "read", "k", "{branch}"], id="branch-of-another-key", marks=LATER),
    pytest.param(["merge", "doc", "--agent", "synth"], id="merge-conflicts"),
    pytest.param(["submit", "q", "--idempotency-key", "", "--agent", "b"], id="idempotency-key"),
    pytest.param(["check", "{history}"], id="check-malformed"),
    pytest.param(["plan", "--from-history", "{history}"], id="plan-malformed"),
    pytest.param(["write", "k", "--json-value", "--agent", "agent-b"], id="json-value"),
    pytest.param(["write", "k", "--agent", "a\udcff"], id="agent-name"),
]


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("args", CASES)
def test_cli_errors_use_the_command_lines_words(
    sqlite_url: str, tmp_path: Path, args: list[str], as_json: bool
) -> None:
    names = _setup(sqlite_url, tmp_path)
    full = [a.format(**names) for a in args] + ["--store", sqlite_url]
    result = CliRunner().invoke(cli, full + (["--json"] if as_json else []), input="value\n")
    assert result.exception is None or isinstance(result.exception, SystemExit), args
    assert result.exit_code != 0, result.output
    assert not pythonisms(result.output), result.output


POLICY_CASES = [
    (["write", "notes/a.md", "--agent", "a"], "--expect"),  # optimistic, no version
    (["write", "notes/a.md", "--force", "--agent", "a"], "--expect"),
    (["write", "notes/special.md", "--agent", "a"], "accord lease acquire notes/special.md"),
    # Its writers may create a branch resource (issue 11 item 3), not overwrite it.
    (["write", "findings/x.md", "--force", "--agent", "a"], "accord fork findings/x.md"),
    (["write", "draft.md", "--agent", "a"], "accord submit draft.md"),
    (["write", "plan.md", "--agent", "a"], "accord submit plan.md"),
    (["submit", "notes/a.md", "--agent", "a"], "accord read notes/a.md"),
    (["submit", "notes/special.md", "--agent", "a"], "--lease TOKEN"),
    (["requests", "draft.md", "--agent", "a"], "accord submit draft.md"),
    (["write", "x", "--agent", "zed"], "--agent NAME"),
]


@pytest.mark.parametrize(("args", "words"), POLICY_CASES, ids=lambda v: str(v)[:40])
def test_policy_errors_use_the_command_lines_words(
    sqlite_url: str, args: list[str], words: str
) -> None:
    result = CliRunner().invoke(
        cli, [*args, "--store", sqlite_url], input="value\n", env={"ACCORD_MANIFEST": str(MANIFEST)}
    )
    assert result.exit_code != 0, result.output
    assert words in result.output, result.output
    assert not pythonisms(result.output), result.output


def test_policy_errors_in_python_keep_pythons_words(sqlite_url: str) -> None:
    with accord.open(sqlite_url, manifest=MANIFEST) as store:
        with pytest.raises(accord.PolicyViolation) as info:
            store.session("a").write("notes/a.md", "x")
        assert "expect=<that version> (expect=0 to create)" in info.value.message
        assert "update('notes/a.md', fn)" in info.value.message
        cli_words = info.value.render("cli")
        assert "--expect <that version> (--expect 0 to create)" in cli_words
        assert not pythonisms(cli_words)
        with pytest.raises(accord.PolicyViolation) as info:
            store.session("a").write("notes/special.md", "x")
        assert "session.acquire('notes/special.md')" in info.value.message
        assert "session.write('notes/special.md', ..., lease=lease)" in info.value.message
        assert "accord write notes/special.md --lease TOKEN" in info.value.render("cli")
