"""The core CLI: read, write, delete, log, export; exit codes; docs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from accord.cli import cli


@pytest.fixture
def run(sqlite_url: str):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, agent: str = "agent-a"):  # type: ignore[no-untyped-def]
        return runner.invoke(
            cli,
            [*args, "--store", sqlite_url, "--agent", agent],
            input=input,
            catch_exceptions=False,
        )

    return invoke


def test_write_read_roundtrip(run) -> None:  # type: ignore[no-untyped-def]
    r = run("write", "docs/plan.md", input="hello\n")
    assert r.exit_code == 0, r.output
    assert "v1" in r.output
    r = run("read", "docs/plan.md")
    assert r.exit_code == 0 and r.stdout.startswith("hello")
    r = run("read", "docs/plan.md", "--json")
    data = json.loads(r.stdout)
    assert data["version"] == 1 and data["value"] == "hello\n" and data["author"] == "agent-a"


def test_write_from_file_and_json(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "v.json"
    f.write_text('{"a": 1}')
    assert run("write", "cfg", "--file", str(f), "--json-value").exit_code == 0
    assert json.loads(run("read", "cfg", "--json").stdout)["value"] == {"a": 1}


def test_exit_codes(run) -> None:  # type: ignore[no-untyped-def]
    assert run("write", "k", input="1").exit_code == 0
    r = run("write", "k", input="2")
    assert r.exit_code == 3 and "PreconditionRequired" in r.output
    r = run("write", "k", "--expect", "7", input="2")
    assert r.exit_code == 3 and "Conflict on k" in r.output
    assert run("write", "k", "--expect", "1", input="2").exit_code == 0
    assert run("write", "k", "--force", input="3").exit_code == 0
    r = run("read", "nope")
    assert r.exit_code == 3 and "NotFound" in r.output
    r = run("write", "bad//key", input="x")
    assert r.exit_code == 1 and "InvalidKey" in r.output


def test_write_json_error_output(run) -> None:  # type: ignore[no-untyped-def]
    run("write", "k", input="1")
    r = run("write", "k", "--expect", "5", "--json", input="2")
    assert r.exit_code == 3
    data = json.loads(r.stdout)
    assert data["error"] == "Conflict" and data["current"] == 1 and data["expected"] == 5


def test_write_needs_an_agent(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCORD_AGENT", raising=False)
    r = CliRunner().invoke(cli, ["write", "k", "--store", sqlite_url], input="x")
    assert r.exit_code == 1 and "--agent" in r.output


def test_delete(run) -> None:  # type: ignore[no-untyped-def]
    run("write", "k", input="1")
    assert run("delete", "k").exit_code == 3
    assert run("delete", "k", "--expect", "1").exit_code == 0
    assert run("read", "k").exit_code == 3


def test_idempotency_key(run) -> None:  # type: ignore[no-untyped-def]
    assert run("write", "k", "--idempotency-key", "r1", input="1").exit_code == 0
    r = run("write", "k", "--idempotency-key", "r1", input="1")
    assert r.exit_code == 0 and "v1" in r.output
    assert run("write", "k", "--idempotency-key", "r1", input="2").exit_code == 3


def test_log_and_export(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("write", "k", input="1")
    run("write", "k", "--expect", "1", input="2", agent="agent-b")
    r = run("log")
    assert r.exit_code == 0 and "agent-b" in r.output
    lines = run("log", "--json").stdout.splitlines()
    assert [json.loads(line)["version"] for line in lines] == [1, 2]
    out = tmp_path / "h.jsonl"
    r = run("export", str(out))
    assert r.exit_code == 0 and "2 events" in r.output
    assert len(out.read_text().splitlines()) == 2


def test_unknown_store_url() -> None:
    r = CliRunner().invoke(cli, ["read", "k", "--store", "bogus://x"])
    assert r.exit_code == 1 and "Unknown store URL" in r.output


def test_python_dash_m_works(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "accord", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "accord" in out.stdout


def test_every_command_is_documented() -> None:
    text = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    for name, command in cli.commands.items():
        assert f"## accord {name}" in text, f"docs/cli.md does not document `accord {name}`"
        if hasattr(command, "commands"):
            for sub in command.commands:  # type: ignore[attr-defined]
                assert f"accord {name} {sub}" in text, f"docs/cli.md lacks `accord {name} {sub}`"
