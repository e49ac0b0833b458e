"""Values in the CLI's JSON output round-trip, bytes included (issue 11 item 5)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import accord
from accord.cli import cli
from accord.records import from_wire

RAW = b"\xff\xfe\x00bad"


def run(url: str, *args: str, input: bytes | str | None = None) -> tuple[int, Any]:
    result = CliRunner().invoke(cli, [*args, "--store", url], input=input)
    assert result.exit_code == 0, result.output
    return result.exit_code, json.loads(result.stdout)


def test_issue_repro_read_json_round_trips_bytes(sqlite_url: str, tmp_path: Path) -> None:
    """printf '\\xff\\xfe\\x00bad' | accord write k --binary; accord read k --json"""
    env_cmd = [sys.executable, "-m", "accord"]
    write = subprocess.run(
        [*env_cmd, "write", "k", "--binary", "--store", sqlite_url, "--agent", "a"],
        input=RAW,
        capture_output=True,
        timeout=60,
    )
    assert write.returncode == 0, write.stderr
    read = subprocess.run(
        [*env_cmd, "read", "k", "--json", "--store", sqlite_url],
        capture_output=True,
        timeout=60,
    )
    assert read.returncode == 0, read.stderr
    data = json.loads(read.stdout)
    assert data["kind"] == "bytes"
    assert from_wire(data["kind"], data["value"]) == RAW


def test_every_json_output_carries_bytes_as_base64(sqlite_url: str) -> None:
    _, doc = run(sqlite_url, "write", "k", "--binary", "--agent", "a", "--json", input=RAW)
    assert from_wire(doc["kind"], doc["value"]) == RAW

    # branch read, fork --json, merge --json
    _, forked = run(sqlite_url, "fork", "k", "--agent", "a", "--json")
    _, branch = run(sqlite_url, "branch", "read", "k", forked["id"], "--json")
    assert from_wire(branch["kind"], branch["value"]) == RAW
    run(
        sqlite_url, "branch", "write", "k", forked["id"], "--binary", "--json", "--agent", "a",
        input=RAW + b"!",
    )
    _, merged = run(sqlite_url, "merge", "k", "--agent", "synth", "--json", "--dry-run")
    assert from_wire(merged["kind"], merged["value"]) == RAW + b"!"

    # submit, requests: the change carries its kind beside it
    _, submitted = run(sqlite_url, "submit", "q", "--binary", "--agent", "c", "--json", input=RAW)
    assert from_wire(submitted["change_kind"], submitted["change"]) == RAW
    _, listing = run(sqlite_url, "requests", "q", "--agent", "w", "--json")
    (request,) = listing["requests"]
    assert from_wire(request["change_kind"], request["change"]) == RAW

    # text and JSON keep their kinds
    _, text = run(sqlite_url, "write", "t", "--agent", "a", "--json", input="héllo\n")
    assert (text["kind"], text["value"]) == ("text", "héllo\n")
    _, data = run(
        sqlite_url, "write", "j", "--json-value", "--agent", "a", "--json", input='{"a": [1]}'
    )
    assert (data["kind"], data["value"]) == ("json", {"a": [1]})


def test_merge_conflict_json_carries_bytes_sides_as_base64(sqlite_url: str) -> None:
    with accord.open(sqlite_url) as store:
        store.session("owner").write("k", RAW)
    _, one = run(
        sqlite_url, "fork", "k", "--agent", "a", "--json", "--binary", "--file", "-", input=b"\x01"
    )
    _, two = run(
        sqlite_url, "fork", "k", "--agent", "b", "--json", "--binary", "--file", "-", input=b"\x02"
    )
    result = CliRunner().invoke(
        cli, ["merge", "k", "--agent", "s", "--json", "--store", sqlite_url]
    )
    assert result.exit_code == 3, result.output
    (conflict,) = json.loads(result.stdout)["conflicts"]
    assert conflict["kind"] == "bytes"
    assert from_wire("bytes", conflict["base"]) == RAW
    assert {k: from_wire("bytes", v) for k, v in conflict["sides"].items()} == {
        one["id"]: b"\x01",
        two["id"]: b"\x02",
    }


def test_json_value_input_that_would_change_is_refused(sqlite_url: str) -> None:
    """--json-value: NaN and nesting over the limit are InvalidValue (exit 1), not a traceback."""
    runner = CliRunner()
    for text in ('{"x": NaN}', "[" * 20_000 + "]" * 20_000, "[" * 300 + "]" * 300):
        result = runner.invoke(
            cli,
            ["write", "k", "--json-value", "--store", sqlite_url, "--agent", "a"],
            input=text,
        )
        assert result.exit_code == 1, result.output
        assert "InvalidValue" in result.output and "nothing was written" in result.output
    with accord.open(sqlite_url) as store:
        assert list(store.history()) == []
