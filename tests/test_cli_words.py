"""Messages on the command line use the command line's words (issue 11 item 11).

Every error a command prints is rendered for the command line: `--expect 0`,
`--force`, `--wait`, `accord branch list K`, never Python's `expect=0`,
`force=True`, `wait=` or `store.branches('k')`. The cases below provoke the
errors a user meets; each output is scanned for Python's words.
"""

from __future__ import annotations

import ast
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
        # A request decided already: deciding it again is refused.
        a.write("q2", "base\n")
        done = store.session("b").submit("q2", "change\n")
        writer = store.session("writer")
        for request in writer.requests("q2", timeout=0):
            writer.accept(request, "base\nchange\n")
            break
        # A branch forked from a document since deleted and created again
        # (issue 11 item 2): its merge is refused.
        a.write("lin", "old\n")
        stale = a.fork("lin")
        stale.write("old\nedit\n")
        a.delete("lin", expect=1)
        a.write("lin", "new\n", expect=0)
        store.export_history(tmp / "native.jsonl")
    bad_history = tmp / "bad.jsonl"
    bad_history.write_text('{"agent": "a", "op": "write"}\nnot json\n')
    # Three writes that overlap in time: a search budget of one step cannot
    # decide whether the reads after them are linearizable.
    foreign = tmp / "foreign.jsonl"
    foreign.write_text(
        "".join(
            f'{{"agent": "{who}", "op": "write", "key": "x", "value": {n}, "start": 0, '
            '"end": 10}\n'
            for n, who in enumerate("abc", start=1)
        )
        + '{"agent": "d", "op": "read", "key": "x", "value": 2, "start": 11, "end": 12}\n'
        + '{"agent": "e", "op": "read", "key": "x", "value": 3, "start": 13, "end": 14}\n'
    )
    return {
        "branch": one.id,
        "history": str(bad_history),
        "native": str(tmp / "native.jsonl"),
        "foreign": str(foreign),
        "decided": done.id,
    }


CASES = [
    pytest.param(["write", "k", "--agent", "agent-b"], id="precondition-required"),
    pytest.param(["write", "k", "--expect", "7", "--agent", "agent-b"], id="conflict"),
    pytest.param(["write", "new", "--expect", "3", "--agent", "b"], id="conflict-absent"),
    pytest.param(["write", "k", "--expect", "0", "--agent", "b"], id="conflict-create"),
    pytest.param(["delete", "k", "--agent", "agent-b"], id="delete-unguarded"),
    pytest.param(["delete", "k", "--expect", "0", "--agent", "b"], id="delete-expect-0"),
    pytest.param(["read", "nope"], id="not-found"),
    pytest.param(["lease", "acquire", "held", "--wait", "0", "--agent", "b"], id="lease-timeout"),
    pytest.param(["fork", "nope", "--agent", "agent-b"], id="fork-absent"),
    pytest.param(["branch", "read", "doc", "b-nope"], id="no-branch"),
    pytest.param(["merge", "k", "--agent", "synth"], id="nothing-to-merge"),
    pytest.param(
        ["accept", "q", "r-nope", "--expect", "1", "--agent", "writer"], id="no-request"
    ),
    pytest.param(
        ["accept", "q2", "{decided}", "--expect", "2", "--agent", "writer"], id="decided-already"
    ),
    pytest.param(["submit", "q", "--wait", "0", "--agent", "b"], id="request-pending"),
    pytest.param(["write", "bad//key", "--agent", "agent-b"], id="invalid-key"),
    pytest.param(["write", "k", "--lease", "99", "--agent", "agent-b"], id="not-a-lease"),
    pytest.param(["lease", "release", "held", "--token", "99", "--agent", "b"], id="release"),
    pytest.param(["lease", "renew", "held", "--token", "99", "--agent", "b"], id="renew"),
    pytest.param(["lease", "renew", "held", "--token", "1", "--agent", "b"], id="renew-not-yours"),
    pytest.param(["branch", "read", "k", "{branch}"], id="branch-of-another-key"),
    pytest.param(["merge", "doc", "--agent", "synth"], id="merge-conflicts"),
    pytest.param(["submit", "q", "--idempotency-key", "", "--agent", "b"], id="idempotency-key"),
    pytest.param(["check", "{history}"], id="check-malformed"),
    pytest.param(["plan", "--from-history", "{history}"], id="plan-malformed"),
    pytest.param(["write", "k", "--json-value", "--agent", "agent-b"], id="json-value"),
    pytest.param(["write", "k", "--agent", "a\udcff"], id="agent-name"),
    # The errors issue 11's fixes added (items 1, 2, 8, 14b).
    pytest.param(["write", "held", "--expect", "1", "--agent", "b"], id="lease-held"),
    pytest.param(["write", "held", "--expect", "1", "--agent", "agent-a"], id="lease-held-own"),
    pytest.param(["delete", "held", "--force", "--agent", "b"], id="lease-held-delete"),
    pytest.param(["branch", "write", "doc", "{branch}", "--agent", "agent-b"], id="not-owner"),
    pytest.param(["merge", "lin", "--agent", "synth"], id="merge-lineage"),
    pytest.param(["requests", "q", "--wait", "nan", "--agent", "writer"], id="wait-nan"),
    pytest.param(["lease", "acquire", "k", "--ttl", "-1", "--agent", "b"], id="ttl-negative"),
    pytest.param(["lease", "acquire", "k", "--wait", "inf", "--agent", "b"], id="wait-inf"),
    pytest.param(["write", "k", "--expect", "-1", "--agent", "b"], id="expect-negative"),
    pytest.param(["write", "k", "--expect", "9" * 25, "--agent", "b"], id="expect-too-big"),
    pytest.param(["check", "{native}", "--linearizable"], id="linearizable-native"),
    pytest.param(["agents", "rotate", "nobody"], id="no-credential"),
    pytest.param(["check", "{foreign}", "--linearizable", "--budget", "1"], id="budget"),
]


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("args", CASES)
def test_cli_errors_use_the_command_lines_words(
    sqlite_url: str, tmp_path: Path, args: list[str], as_json: bool
) -> None:
    names = _setup(sqlite_url, tmp_path)
    full = [a.format(**names) for a in args]
    if args[0] != "plan":  # the plan reads a manifest or a history, not a store
        full += ["--store", sqlite_url]
    result = CliRunner().invoke(cli, full + (["--json"] if as_json else []), input="value\n")
    assert result.exception is None or isinstance(result.exception, SystemExit), args
    assert result.exit_code != 0, result.output
    # Each case reaches the error it is about, not a parse error of its arguments.
    assert "Usage:" not in result.output and "No such option" not in result.output, result.output
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


# What each message tells the command line to do, in its own words.
WORDS = [
    (["write", "held", "--expect", "1", "--agent", "b"], "accord lease acquire held --wait 1"),
    (["write", "held", "--expect", "1", "--agent", "agent-a"], "accord write held --lease 1"),
    (["branch", "write", "doc", "{branch}", "--agent", "agent-b"], "(accord fork doc)"),
    (["merge", "lin", "--agent", "synth"], "fork the new lin for new work"),
    (["branch", "read", "doc", "b-nope"], "accord branch list doc"),
    (["write", "k", "--agent", "b"], "--expect 1"),
    (["write", "k", "--agent", "b"], "--force"),
    (["delete", "k", "--agent", "b"], "accord delete k --lease TOKEN"),
    (["read", "nope"], "accord write nope --expect 0"),
    (["requests", "q", "--wait", "nan", "--agent", "writer"], "--wait must be a number"),
    (["lease", "acquire", "held", "--wait", "0", "--agent", "b"], "--wait SECONDS"),
    (["accept", "q2", "{decided}", "--expect", "2", "--agent", "writer"], "accord requests q2"),
    (["check", "{foreign}", "--linearizable", "--budget", "1"], "(--budget STEPS)"),
    (["check", "{native}", "--linearizable"], "without --linearizable"),
    (["agents", "rotate", "nobody"], "accord agents add nobody"),
]


@pytest.mark.parametrize(("args", "words"), WORDS, ids=lambda v: str(v)[:48])
def test_cli_messages_say_what_to_run(
    sqlite_url: str, tmp_path: Path, args: list[str], words: str
) -> None:
    names = _setup(sqlite_url, tmp_path)
    full = [a.format(**names) for a in args] + ["--store", sqlite_url]
    result = CliRunner().invoke(cli, full, input="value\n")
    assert result.exit_code != 0, result.output
    # "lease acquire held --wait N": N is the seconds left on the lease.
    text = re.sub(r"--wait \d+", "--wait 1", result.output) if "--wait" in words else result.output
    assert words in " ".join(text.split()), result.output


def test_lease_held_says_how_to_wait_in_each_surface(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    a.write("doc", "v1")
    a.acquire("doc", ttl=60, wait=0)
    with pytest.raises(accord.LeaseHeld) as info:
        b.write("doc", "v2", expect=1)
    python, cli_words = info.value.message, info.value.render("cli")
    assert re.search(r"session\.acquire\('doc', wait=\d+\)", python), python
    assert "session.write('doc', value, lease=lease)" in python
    assert re.search(r"accord lease acquire doc --wait \d+", cli_words), cli_words
    assert "accord write doc --lease TOKEN" in cli_words
    assert not pythonisms(cli_words)
    with pytest.raises(accord.LeaseHeld) as info:
        a.write("doc", "v2", expect=1)
    assert "session.write('doc', value, lease=1)" in info.value.message
    assert "accord write doc --lease 1" in info.value.render("cli")


@pytest.mark.parametrize(
    ("kwargs", "python", "cli_words"),
    [
        ({"expect": True}, "expect must be a version number", "--expect must be a version number"),
        ({"expect": -1}, "expect=<the version you read>", "--expect <the version you read>"),
        ({"force": "no"}, "force must be True or False", "--force must be True or False"),
    ],
    ids=["bool-version", "negative-version", "string-force"],
)
def test_argument_errors_in_each_surface(
    store: accord.Store, kwargs: dict[str, object], python: str, cli_words: str
) -> None:
    session = store.session("a")
    with pytest.raises(UsageError) as info:
        session.write("k", "v", **kwargs)  # type: ignore[arg-type]
    assert python in info.value.message
    assert cli_words in info.value.render("cli")
    assert not pythonisms(info.value.render("cli"))
    with pytest.raises(UsageError) as info:
        list(session.requests("k", timeout=float("nan")))
    assert info.value.message.startswith("timeout must be a number of seconds, not NaN")
    assert "Pass, say, timeout=5." in info.value.message
    assert info.value.render("cli").startswith("--wait must be a number of seconds, not NaN")


def test_checker_findings_in_each_surface(tmp_path: Path) -> None:
    import pickle

    names = _setup("memory://", tmp_path)
    result = accord.check(names["foreign"], linearizable=True, budget=1)
    (finding,) = result.unknown[-1:]
    assert finding.name == "nonlinearizable"
    assert "Raise the budget (budget=steps)" in finding.explanation
    assert "Raise the budget (--budget STEPS)" in finding.render("cli")
    assert finding.to_dict("cli")["explanation"] == finding.render("cli")
    assert result.to_dict()["unknown"][-1]["explanation"] == finding.explanation
    assert pickle.loads(pickle.dumps(finding)).render("cli") == finding.render("cli")
    with pytest.raises(UsageError) as info:
        accord.check(names["native"], linearizable=True)
    assert "(linearizable=True)" in info.value.message
    assert "(--linearizable)" in info.value.render("cli")


def test_a_message_built_from_another_keeps_its_markup(store: accord.Store) -> None:
    # update() quotes the last conflict: its --expect must survive on the CLI.
    a = store.session("a")
    a.write("hot", 0)

    def bump(value: object) -> object:
        store.session("b").update("hot", lambda v: v + 1, retries=0)  # type: ignore[operator]
        return value

    with pytest.raises(accord.RetriesExhausted) as info:
        a.update("hot", bump, retries=0)
    assert "expect=" in info.value.message
    cli_words = info.value.render("cli")
    assert "--expect" in cli_words and "expect=" not in cli_words.replace("--expect", "")


# --- no message source carries Python's words outside the markup ------------

SOURCE = Path(accord.__file__).parent
SCANNED = [
    "session.py",
    "store.py",
    "params.py",
    "credentials.py",
    "plan",
    "strategies",
    "backends",
    "history",
    "policy",
    "mcp",
]
"""The modules whose messages reach the command line (or MCP) as well as Python."""

RAW_PYTHON = re.compile(
    r"\b(expect|force|wait|ttl|mode|lease|timeout|lenient|resolve|idempotency_key|record_reads|"
    r"max_value_size|manifest|retries|backoff|budget|linearizable|keepalive|clock|agent|"
    r"identity)=(?!=)"
    r"|\b(store|session|req|request|b|branch|lease|accord)\.[a-z_]+\("
    r"|\b(write|read|update|delete|submit|fork|merge|acquire|release|renew|requests|accept|"
    r"reject|serve|branches|lease_all|export_history|check|open|build_server|resolve)\("
)
"""A how-to in Python's words: ``expect=0``, ``store.branches(``, ``update(``."""

ALLOWED = {
    ("mcp/models.py", "as expect="): "MCP tool schemas: the tools take Python's argument names",
    ("mcp/server.py", "accord keeps shared state"): "the MCP server's instructions, in the "
    "MCP tools' argument names",
    ("mcp/server.py", "build_server() takes"): "a Python-only constructor's argument error",
}
"""(module, text of the literal) -> why its Python words are right where they are."""


def raw_python_words(source: str) -> list[tuple[int, str, str]]:
    """(line, match, literal) for each how-to in Python's words in a string
    literal of ``source`` (docstrings and bare string statements excluded:
    they document the Python API; so are reprs, which show Python objects)."""
    tree = ast.parse(source)
    documentation = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "__repr__":
            documentation.update(id(inner) for inner in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in documentation
        ):
            for match in RAW_PYTHON.finditer(node.value):
                found.append((node.lineno, match.group(0), node.value))
    return found


def test_the_source_scan_finds_raw_python_words() -> None:
    source = (
        'def f(key):\n'
        '    """Call write(key, value, expect=0)."""\n'
        '    raise UsageError(f"{key} exists: pass force=True, or use update().")\n'
        'def g(key):\n'
        '    raise NotFound(f"List them with store.branches({key!r}).")\n'
        'def h(key):\n'
        '    raise NotFound(f"List them with {call(\'store.branches\', key)}.")\n'
        'class C:\n'
        '    def __repr__(self):\n'
        '        return f"C(mode={self.mode!r})"\n'
    )
    assert [(line, word) for line, word, _ in raw_python_words(source)] == [
        (3, "force="),
        (3, "update("),
        (5, "store.branches("),
    ]


def test_no_message_source_carries_raw_python_words() -> None:
    files = []
    for name in SCANNED:
        path = SOURCE / name
        files += sorted(path.glob("*.py")) if path.is_dir() else [path]
    raw, used = [], set()
    for path in files:
        module = path.relative_to(SOURCE).as_posix()
        for line, word, text in raw_python_words(path.read_text(encoding="utf-8")):
            allowed = [k for k in ALLOWED if k[0] == module and k[1] in text]
            used.update(allowed)
            if not allowed:
                raw.append(f"{module}:{line}: {word!r} in {text[:80]!r}")
    assert not raw, (
        "Write how-tos with accord.errors.call/option/argument so each surface gets its own "
        "words:\n" + "\n".join(raw)
    )
    assert used == set(ALLOWED), f"allow-list entries that match nothing: {set(ALLOWED) - used}"
