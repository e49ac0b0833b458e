"""accord watch: JSON lines as changes commit, human lines, stopping, Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO

import pytest
from click.testing import CliRunner

import accord
from accord.cli import cli

from .test_cli_exits import ctrl_c_reaches_child

ACCORD = [sys.executable, "-m", "accord"]
BOUND = 60.0


class Lines:
    """The lines a process prints, each taken with a bounded wait."""

    def __init__(self, stream: IO[str]) -> None:
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._q.put(line)
        self._q.put(None)

    def next(self) -> str | None:
        return self._q.get(timeout=BOUND)


@contextlib.contextmanager
def _start(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``accord watch ARGS`` as a child process, killed if a test leaves it running."""
    with subprocess.Popen(
        [*ACCORD, "watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_reaches_child,
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def test_json_lines_arrive_one_by_one_as_changes_commit(sqlite_url: str) -> None:
    with accord.open(sqlite_url) as store:
        writer = store.session("writer")
        since = store.revision()
        with _start("live/", "--store", sqlite_url, "--since", str(since), "--json",
                    "--count", "3", "--timeout", str(BOUND)) as proc:
            assert proc.stdout is not None
            lines = Lines(proc.stdout)
            got = []
            for i, value in enumerate(["one", {"n": 2}, "three"]):
                writer.write(f"live/{i}", value)
                # The line of this change arrives before the next change is
                # made: each line is flushed as its change is seen.
                line = lines.next()
                assert line is not None, proc.stderr.read() if proc.stderr else ""
                got.append(json.loads(line))
            assert proc.wait(BOUND) == 0
            assert lines.next() is None  # --count 3: nothing more
    assert [(g["key"], g["version"], g["kind"], g["value"]) for g in got] == [
        ("live/0", 1, "write", "one"),
        ("live/1", 1, "write", {"n": 2}),
        ("live/2", 1, "write", "three"),
    ]
    assert [g["value_kind"] for g in got] == ["text", "json", "text"]
    assert all(g["agent"] == "writer" and not g["superseded"] for g in got)
    revisions = [g["revision"] for g in got]
    assert revisions == sorted(revisions) and revisions[0] > since


def test_resume_with_since_prints_the_rest(sqlite_url: str) -> None:
    with accord.open(sqlite_url) as store:
        s = store.session("a")
        s.write("r", "1")
        s.write("r", "2", expect=1)
        s.delete("r", expect=2)
    first = subprocess.run(
        [*ACCORD, "watch", "r", "--store", sqlite_url, "--since", "0", "--json", "--count", "1"],
        capture_output=True, text=True, timeout=BOUND,
    )
    assert first.returncode == 0, first.stderr
    head = json.loads(first.stdout)
    assert (head["version"], head["superseded"]) == (1, True)
    assert "value" not in head
    rest = subprocess.run(
        [*ACCORD, "watch", "r", "--store", sqlite_url, "--since", str(head["revision"]),
         "--json", "--timeout", "0"],
        capture_output=True, text=True, timeout=BOUND,
    )
    assert rest.returncode == 0, rest.stderr
    events = [json.loads(line) for line in rest.stdout.splitlines()]
    assert [(e["version"], e["kind"]) for e in events] == [(2, "write"), (3, "delete")]


def test_ctrl_c_stops_a_watch_with_exit_code_0(sqlite_url: str) -> None:
    with accord.open(sqlite_url) as store:
        store.session("a").write("c", "x")
    with _start("c", "--store", sqlite_url, "--since", "0", "--json") as proc:
        assert proc.stdout is not None and proc.stderr is not None
        lines = Lines(proc.stdout)
        assert lines.next() is not None  # it runs, and now waits for the next change
        proc.send_signal(signal.SIGINT)
        assert proc.wait(BOUND) == 0
        assert lines.next() is None
        err = proc.stderr.read()
    assert "Traceback" not in err and "Aborted" not in err


def test_timeout_ends_a_quiet_watch(sqlite_url: str) -> None:
    result = subprocess.run(
        [*ACCORD, "watch", "quiet", "--store", sqlite_url, "--timeout", "0.2"],
        capture_output=True, text=True, timeout=BOUND,
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_human_lines_and_prefixes(sqlite_url: str) -> None:
    with accord.open(sqlite_url) as store:
        s = store.session("agent-a")
        s.write("docs/a", "hello")
        s.write("docs/a", "hello again", expect=1)
        s.write("doc", b"\x00\x01")
        s.write("notes/x", {"k": "v"})
        s.delete("notes/x", expect=1)
    runner = CliRunner()
    out = runner.invoke(cli, ["watch", "docs/", "--store", sqlite_url, "--since", "0",
                              "--timeout", "0"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("rev 1 docs/a v1 write by agent-a")
    assert lines[0].endswith("(superseded by a later version)")
    assert lines[1].endswith('"hello again"')
    out = runner.invoke(cli, ["watch", "doc", "--prefix", "--store", sqlite_url, "--since", "0",
                              "--timeout", "0"])
    assert [line.split()[2] for line in out.output.splitlines()] == ["docs/a", "docs/a", "doc"]
    assert out.output.splitlines()[-1].endswith("<2 bytes>")
    out = runner.invoke(cli, ["watch", "notes/x", "--store", sqlite_url, "--since", "0",
                              "--timeout", "0"])
    last = out.output.splitlines()[-1]
    assert "notes/x v2 delete by agent-a" in last and last.endswith("(deleted)")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["k", "--count", "-1"], "--count -1 is out of range"),
        (["k", "--timeout", "-1"], "--timeout -1 is out of range"),
        (["k", "--since", "-3"], "--since"),
        (["bad//key"], "empty segment"),
    ],
)
def test_bad_input_exits_1_with_a_message(sqlite_url: str, args: list[str], words: str) -> None:
    out = CliRunner().invoke(cli, ["watch", *args, "--store", sqlite_url, "--json"])
    assert out.exit_code == 1
    error = json.loads(out.output)
    assert error["error"] in ("UsageError", "InvalidKey") and words in error["message"]
