"""accord plan: classification, recommendation, --check, --from-history, the demo's plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

import accord
from accord.cli import cli
from accord.plan import (
    COSTS,
    MANY_WRITERS,
    ONE_WRITER,
    READ_ONLY,
    access_from_history,
    demo_plan,
    make_plan,
    manifest_from_history,
    plan_file,
    plan_history,
    render_demo_plan,
    render_plan,
)
from accord.policy import load_manifest, parse_manifest

MANIFESTS = Path(__file__).parent / "manifests"
EXAMPLE = Path(__file__).parent.parent / "examples" / "research-crew" / "accord.toml"


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


# --- classification and recommendation -----------------------------------------------

RECOMMENDED = {
    "config/settings.json": (READ_ONLY, "read_only"),
    "plan.md": (ONE_WRITER, "owner"),
    "draft.md": (MANY_WRITERS, "queue"),
    "notes/*": (MANY_WRITERS, "branch"),
    "sources.json": (MANY_WRITERS, "optimistic"),
    "budget.json": (MANY_WRITERS, "lease"),
    "counter": (MANY_WRITERS, "optimistic"),
    "unknown.md": (MANY_WRITERS, "optimistic"),
    "table.csv": (MANY_WRITERS, "optimistic"),
}


def test_recommendation_table() -> None:
    plan = plan_file(MANIFESTS / "recommend.toml")
    table = {row.resource.key: (row.access, row.strategy) for row in plan.rows}
    assert table == RECOMMENDED
    assert all(not row.declared for row in plan.rows)
    why = {row.resource.key: row.why for row in plan.rows}
    assert "nobody writes it" in why["config/settings.json"]
    assert "an author (author) with contributors (a, b)" in why["draft.md"]
    assert "need not build on each other's work and the value merges" in why["notes/*"]
    assert "high conflict with long reasoning" in why["budget.json"]
    assert "a retry is cheap" in why["counter"]
    assert "conflict rate not stated" in why["unknown.md"]
    assert "builds_on = false, mergeable = true" in why["unknown.md"]
    assert "the value does not merge" in why["table.csv"]
    for row in plan.rows:
        assert row.cost == COSTS[row.strategy]
    # Many-writer resources without a declared strategy fail --check.
    assert {v.key for v in plan.violations} == {
        k for k, (access, _) in RECOMMENDED.items() if access == MANY_WRITERS
    }


def test_declared_strategies_pass_and_are_compared() -> None:
    plan = plan_file(MANIFESTS / "declared.toml")
    assert plan.ok and all(row.declared for row in plan.rows)
    text = (
        '[[resource]]\nkey = "k"\nstrategy = "lease"\nwriters = ["a", "b"]\n'
        'builds_on = false\nmergeable = true\n'
    )
    row = make_plan(parse_manifest(text)).rows[0]
    assert row.strategy == "lease" and row.recommended == "branch"
    assert row.why.startswith("declared. The protocol would pick branch (simpler)")
    assert row.cost == COSTS["lease"]


def test_overlapping_patterns_with_different_strategies() -> None:
    plan = plan_file(MANIFESTS / "overlap.toml")
    overlaps = [v for v in plan.violations if v.kind == "overlap"]
    # notes/*/deep overlaps neither ("*" does not cross "/"); the exact
    # notes/draft.md beats the patterns and is no violation.
    assert len(overlaps) == 1
    message = overlaps[0].message
    assert "'notes/*' (branch, line 2) and '*/draft.md' (optimistic, line 7)" in message
    assert "an exact key beats every pattern" in message


# --- the CLI -------------------------------------------------------------------------------


def test_cli_plan_prints_every_resource() -> None:
    result = run("plan", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    for key in ("plan.md", "notes/findings.md", "notes/sources.json", "draft.md", "config/*"):
        assert key in result.output
    assert "queue (declared)" in result.output and "everyone" in result.output


def test_wide_console_gets_the_column_table() -> None:
    console = Console(width=170, record=True)
    render_plan(plan_file(EXAMPLE), console, check=True)
    text = console.export_text()
    header = next(line for line in text.splitlines() if "resource" in line)
    for column in ("readers", "writers", "access", "strategy", "why", "cost"):
        assert column in header
    assert "check passed" in text


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("declared.toml", 0, "check passed"),
        ("no_strategy.toml", 6, "2 violations"),
        ("overlap.toml", 6, "overlap"),
        ("recommend.toml", 6, "7 violations"),
    ],
)
def test_check_exit_codes(name: str, code: int, words: str) -> None:
    result = run("plan", str(MANIFESTS / name), "--check")
    assert result.exit_code == code, result.output
    assert words in result.output


def test_check_lists_each_violation() -> None:
    result = run("plan", str(MANIFESTS / "no_strategy.toml"), "--check", "--json")
    assert result.exit_code == 6
    data = json.loads(result.output)
    assert not data["ok"]
    assert [(v["kind"], v["key"]) for v in data["violations"]] == [
        ("no-strategy", "plan.md"),
        ("no-strategy", "draft.md"),
    ]
    assert 'recommends strategy = "queue"' in data["violations"][1]["message"]
    rows = {r["key"]: r for r in data["resources"]}
    assert rows["own.md"]["access"] == ONE_WRITER and rows["own.md"]["strategy"] == "owner"
    assert rows["draft.md"]["submitters"] == ["b"]


def test_without_check_violations_are_shown_but_exit_zero() -> None:
    result = run("plan", str(MANIFESTS / "no_strategy.toml"))
    assert result.exit_code == 0 and "would fail --check" in result.output


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("bad_syntax.toml", "at line 5, column 12"),
        ("unknown_strategy.toml", "did you mean 'optimistic'"),
        ("owner_without_writer.toml", "needs its writer"),
        ("queue_without_writer.toml", "needs its writer"),
        ("undeclared_agent.toml", "not declared"),
        ("missing.toml", "No manifest"),
    ],
)
def test_bad_manifest_exits_1(name: str, words: str) -> None:
    result = run("plan", str(MANIFESTS / name), "--check")
    assert result.exit_code == 1
    assert "ManifestError" in result.output and words in result.output


def test_default_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ACCORD_MANIFEST", raising=False)
    result = run("plan")
    assert result.exit_code == 1 and "No manifest at accord.toml" in result.output
    (tmp_path / "accord.toml").write_text(EXAMPLE.read_text())
    assert run("plan", "--check").exit_code == 0
    result = run("plan", "--check", env={"ACCORD_MANIFEST": str(MANIFESTS / "no_strategy.toml")})
    assert result.exit_code == 6


def test_option_misuse_exits_1(tmp_path: Path) -> None:
    result = run("plan", "--write-manifest", str(tmp_path / "m.toml"))
    assert result.exit_code == 1 and "--from-history" in result.output


def test_plan_is_listed_in_help() -> None:
    assert "plan" in run("--help").output
    assert "--from-history" in run("plan", "--help").output


# --- histories ------------------------------------------------------------------------------


def record_crew_history(url: str, path: Path) -> None:
    """A small run: optimistic writers with a conflict, blind writers, an owner, a loner."""
    with accord.open(url, record_reads=True) as store:
        a, b, c = (store.session(n) for n in ("a", "b", "c"))
        a.write("sources.json", [], expect=0)
        da = a.read("sources.json")
        db = b.read("sources.json")
        b.write("sources.json", ["b1"], expect=db.version)
        with pytest.raises(accord.Conflict):
            a.write("sources.json", ["a1"], expect=da.version)
        a.update("sources.json", lambda old: [*old, "a1"])
        c.read("sources.json")
        a.write("notes.md", "a", force=True)
        b.read("notes.md")
        b.write("notes.md", "b", force=True)
        c.write("plan.md", "plan", expect=0)
        a.read("plan.md")
        c.write("scratch/c.txt", "mine", expect=0)
        store.export_history(path)


def test_access_from_history(tmp_path: Path, sqlite_url: str) -> None:
    history = tmp_path / "history.jsonl"
    record_crew_history(sqlite_url, history)
    from accord.plan import read_history

    observed = access_from_history(read_history(history))
    src = observed["sources.json"]
    assert src.writers == {"a", "b"} and src.readers == {"a", "b", "c"}
    assert src.conflicts == 1 and src.attempts == 4 and src.strategy() == "optimistic"
    assert src.builds_on  # a's update built on b's version
    assert observed["notes.md"].strategy() is None
    assert observed["plan.md"].writers == {"c"}


def test_from_history_plan_and_check(tmp_path: Path, sqlite_url: str) -> None:
    history = tmp_path / "history.jsonl"
    record_crew_history(sqlite_url, history)
    result = run("plan", "--from-history", str(history), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    rows = {r["key"]: r for r in data["resources"]}
    assert set(rows) == {"sources.json", "notes.md", "plan.md"}
    assert data["private_keys"] == 1
    assert rows["sources.json"]["strategy"] == "optimistic"
    assert rows["sources.json"]["origin"] == "in use"
    assert "1 refused (25%)" in rows["sources.json"]["observed"]
    assert rows["notes.md"]["access"] == MANY_WRITERS
    assert rows["notes.md"]["origin"] == "recommended"
    assert rows["plan.md"]["access"] == ONE_WRITER and rows["plan.md"]["strategy"] == "owner"
    assert [v["key"] for v in data["violations"]] == ["notes.md"]
    assert "with 2 blind writes (check: none): updates can be lost" in (
        data["violations"][0]["message"]
    )
    result = run("plan", "--from-history", str(history), "--check")
    assert result.exit_code == 6 and "notes.md" in result.output
    # The same table straight from the store.
    data2 = json.loads(run("plan", "--from-history", sqlite_url, "--json").output)
    assert {r["key"] for r in data2["resources"]} == set(rows)


def test_write_manifest_from_history_round_trips(tmp_path: Path, sqlite_url: str) -> None:
    history = tmp_path / "history.jsonl"
    record_crew_history(sqlite_url, history)
    target = tmp_path / "accord.toml"
    result = run("plan", "--from-history", str(history), "--write-manifest", str(target))
    assert result.exit_code == 0 and "wrote a starting manifest" in result.output
    text = target.read_text()
    assert "# optimistic (in use): " in text
    assert "# optimistic (recommended): no strategy in use" in text
    manifest = load_manifest(target)
    assert list(manifest.agents) == ["a", "b", "c"]
    strategies = {r.key: r.strategy for r in manifest.resources}
    assert strategies == {"notes.md": "optimistic", "plan.md": "owner",
                          "sources.json": "optimistic"}
    sources = manifest.resource_for("sources.json")
    assert sources is not None and sources.conflicts == "high" and sources.builds_on is True
    assert run("plan", str(target), "--check").exit_code == 0
    # Checking the history against it: every writer is declared, but the blind
    # writes to notes.md did not follow the strategy the manifest now declares.
    result = run("plan", str(target), "--from-history", str(history), "--check", "--json")
    assert result.exit_code == 6
    found = [(v["kind"], v["key"]) for v in json.loads(result.output)["violations"]]
    assert found == [("strategy-not-followed", "notes.md")] * 2
    # It refuses to overwrite.
    again = run("plan", "--from-history", str(history), "--write-manifest", str(target))
    assert again.exit_code == 1 and "already exists" in again.output


def test_history_against_manifest_finds_undeclared_writers(
    tmp_path: Path, sqlite_url: str
) -> None:
    history = tmp_path / "history.jsonl"
    record_crew_history(sqlite_url, history)
    manifest = tmp_path / "accord.toml"
    manifest.write_text(
        '[agents.a]\n[agents.b]\n'
        '[[resource]]\nkey = "sources.json"\nstrategy = "optimistic"\nwriters = ["a"]\n'
    )
    result = run("plan", str(manifest), "--from-history", str(history), "--check", "--json")
    assert result.exit_code == 6
    kinds = {(v["kind"], v["key"]) for v in json.loads(result.output)["violations"]}
    assert ("undeclared-writer", "sources.json") in kinds  # b wrote it
    assert ("undeclared-agent", "sources.json") in kinds  # c is not declared
    assert ("undeclared-resource", "notes.md") in kinds  # a and b wrote it, no resource
    messages = json.loads(result.output)["violations"]
    b_msg = next(v["message"] for v in messages if v["kind"] == "undeclared-writer")
    assert b_msg.startswith("b wrote sources.json (write) but is not declared a writer")


def test_history_that_ignored_the_strategy(tmp_path: Path, sqlite_url: str) -> None:
    history = tmp_path / "history.jsonl"
    record_crew_history(sqlite_url, history)
    manifest = tmp_path / "accord.toml"
    manifest.write_text(
        '[[resource]]\nkey = "notes.md"\nstrategy = "optimistic"\nwriters = ["a", "b"]\n'
    )
    plan = plan_file(manifest, str(history))
    followed = [v for v in plan.violations if v.kind == "strategy-not-followed"]
    assert [v.key for v in followed] == ["notes.md", "notes.md"]  # a's and b's blind writes
    assert "guarded by 'none'" in followed[0].message


def test_foreign_history(tmp_path: Path) -> None:
    lines = [
        {"agent": "a", "op": "read", "key": "doc", "value": "v1",
         "start": "2026-11-28T10:00:00.000Z", "end": "2026-11-28T10:00:00.100Z"},
        {"agent": "b", "op": "read", "key": "doc", "value": "v1",
         "start": "2026-11-28T10:00:01.000Z", "end": "2026-11-28T10:00:01.100Z"},
        {"agent": "b", "op": "write", "key": "doc", "value": "v2",
         "start": "2026-11-28T10:00:31.000Z", "end": "2026-11-28T10:00:31.100Z"},
        {"agent": "a", "op": "write", "key": "doc", "value": "v3",
         "start": "2026-11-28T10:00:40.000Z", "end": "2026-11-28T10:00:40.100Z"},
        {"agent": "a", "op": "write", "key": "own", "value": "x",
         "start": "2026-11-28T10:00:41.000Z", "end": "2026-11-28T10:00:41.100Z"},
    ]
    path = tmp_path / "foreign.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    from accord.plan import read_history

    plan = plan_history(read_history(path), source=str(path))
    assert [row.resource.key for row in plan.rows] == ["doc"] and plan.private == 1
    row = plan.rows[0]
    assert row.access == MANY_WRITERS and not row.declared
    assert "median read-to-write 34.9s" in row.why
    manifest, observed, _ = manifest_from_history(read_history(path))
    assert observed["doc"].reasoning() == "long"
    assert manifest.resources[0].reasoning == "long"
    assert [v.kind for v in plan.violations] == ["no-strategy"]


def test_foreign_cas_and_append_are_writes(tmp_path: Path) -> None:
    # Writers that only cas or append are writers (issue 11): a foreign key
    # two agents change with cas and append is a many-writer resource.
    lines = [
        {"agent": "a", "op": "read", "key": "count", "value": 0,
         "start": "2026-11-28T10:00:00.000Z", "end": "2026-11-28T10:00:00.100Z"},
        {"agent": "a", "op": "cas", "key": "count", "expect": 0, "value": 1,
         "start": "2026-11-28T10:00:02.000Z", "end": "2026-11-28T10:00:02.100Z"},
        {"agent": "b", "op": "cas", "key": "count", "expect": 0, "value": 1, "outcome": "fail",
         "start": "2026-11-28T10:00:03.000Z", "end": "2026-11-28T10:00:03.100Z"},
        {"agent": "b", "op": "cas", "key": "count", "expect": 1, "value": 2,
         "start": "2026-11-28T10:00:04.000Z", "end": "2026-11-28T10:00:04.100Z"},
        {"agent": "a", "op": "append", "key": "log", "value": "x",
         "start": "2026-11-28T10:00:05.000Z", "end": "2026-11-28T10:00:05.100Z"},
        {"agent": "c", "op": "append", "key": "log", "value": "y",
         "start": "2026-11-28T10:00:06.000Z", "end": "2026-11-28T10:00:06.100Z"},
    ]
    path = tmp_path / "foreign.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    from accord.plan import read_history

    observed = access_from_history(read_history(path))
    count, log = observed["count"], observed["log"]
    assert count.writers == {"a", "b"} and count.readers == {"a", "b"}
    assert count.attempts == 3 and count.conflicts == 1 and count.checks["version"] == 3
    assert count.think == pytest.approx([1.9])  # a's read, then a's cas
    assert log.writers == {"a", "c"} and not log.readers
    assert log.attempts == 2 and log.conflicts == 0
    plan = plan_history(read_history(path), source=str(path))
    rows = {row.resource.key: row for row in plan.rows}
    assert set(rows) == {"count", "log"} and plan.private == 0
    assert rows["count"].access == MANY_WRITERS and rows["log"].access == MANY_WRITERS
    result = run("plan", "--from-history", str(path))
    assert "count" in result.output and "log" in result.output, result.output


def test_malformed_history_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"agent": "a", "op": "read", "key": "k"}\n\nnot json\n')
    result = run("plan", "--from-history", str(path))
    assert result.exit_code == 1 and "line 3 is not JSON" in result.output
    path.write_text('{"op": "read", "key": "k"}\n')
    result = run("plan", "--from-history", str(path))
    assert result.exit_code == 1 and 'line 1 has no "agent"' in result.output
    result = run("plan", "--from-history", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 1 and "Cannot read the history" in result.output


# --- the demo's plan ---------------------------------------------------------------------------


def test_demo_plan() -> None:
    plan = demo_plan()
    assert [(r.resource.key, r.access, r.strategy) for r in plan.rows] == [
        ("docs/plan.md", MANY_WRITERS, "optimistic")
    ]
    assert plan.rows[0].resource.writers.names == ("agent-a", "agent-b")
    console = Console(width=160, record=True)
    render_demo_plan(console)
    text = console.export_text()
    assert "docs/plan.md" in text and "optimistic" in text and "recommended" in text
    assert 'strategy = "optimistic"' in text
    assert "see it: accord demo" in text
    for strategy in ("branch", "queue", "lease", "none"):
        assert f"--strategy {strategy}" in text


def test_a_bypassed_strategy_is_not_in_use(tmp_path: Path) -> None:
    events = [
        {"agent": "setup", "op": "write", "key": "doc", "version": 1, "check": "version"},
        {"agent": "a", "op": "write", "key": "doc", "version": 2, "check": "version",
         "based_on": 1},
        {"agent": "b", "op": "write", "key": "doc", "version": 3, "check": "none",
         "based_on": 1},
    ]
    plan = plan_history(events, source="inline")
    assert plan.rows[0].origin == "recommended"
    assert [v.kind for v in plan.violations] == ["no-strategy"]
    assert plan_history([], source="empty").rows == []


def test_docs_show_the_real_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/protocol.md shows the example's plan exactly as accord prints it."""
    root = Path(__file__).parent.parent
    monkeypatch.chdir(root)
    console = Console(width=80, record=True)
    render_plan(plan_file("examples/research-crew/accord.toml"), console, check=True)
    rendered = "\n".join(line.strip() for line in console.export_text().splitlines())
    docs_text = (root / "docs" / "protocol.md").read_text()
    docs = "\n".join(line.strip() for line in docs_text.splitlines())
    assert rendered in docs
    example = (root / "examples" / "research-crew" / "accord.toml").read_text()
    assert example.split("\n\n", 1)[1] in docs_text


def test_demo_plan_flag_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from accord import demo as demo_mod

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ACCORD_URL", raising=False)
    result = run("demo", "--plan")
    assert result.exit_code == 0, result.output
    assert "docs/plan.md" in result.output and "--strategy lease" in result.output
    assert list(tmp_path.iterdir()) == []  # no store was created
    # The plan describes the demo's real resources.
    row = demo_plan().rows[0]
    assert row.resource.key == demo_mod.KEY
    assert set(row.resource.writers.names) == set(demo_mod.LINES)
