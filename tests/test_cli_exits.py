"""Exit codes as scripts and shells see them (issue 11 item 12)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import accord
from accord.cli import cli

HISTORIES = Path(__file__).parent / "histories"
BOUND = 60.0
ACCORD = [sys.executable, "-m", "accord"]


def ctrl_c_reaches_child() -> None:
    """Give the child the default Ctrl-C handling.

    A process started from a background job of a non-interactive shell (as CI
    may start the tests) inherits SIGINT *ignored*, and Python then installs
    no KeyboardInterrupt handler: the child would never see the Ctrl-C this
    test sends. Runs in the child between fork and exec.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130(sqlite_url: str) -> None:
    """A command stopped with Ctrl-C (SIGINT) exits 128 + 2, not 1 (a usage error)."""
    args = ["lease", "acquire", "k", "--wait", "100", "--store", sqlite_url, "--agent", "waiter"]
    with accord.open(sqlite_url) as store:
        held = store.session("holder").acquire("k", ttl=120, wait=0)
        with subprocess.Popen(
            [*ACCORD, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            preexec_fn=ctrl_c_reaches_child,
        ) as proc:
            lines: queue.Queue[str] = queue.Queue()
            assert proc.stderr is not None
            stderr = proc.stderr
            threading.Thread(
                target=lambda: [lines.put(line) for line in stderr], daemon=True
            ).start()
            try:
                # Waiting in line is where a user presses Ctrl-C.
                assert "waiting for k" in lines.get(timeout=BOUND)
                proc.send_signal(signal.SIGINT)
                assert proc.wait(timeout=BOUND) == 130
            finally:
                if proc.poll() is None:
                    proc.kill()
                held.release()


def _closed_pipe_run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run with standard output a pipe nobody reads: every write gets EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*ACCORD, *args], stdout=write_end, stderr=subprocess.PIPE, timeout=BOUND
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["check", str(HISTORIES / "lost_update.jsonl")], 5),
        (["check", str(HISTORIES / "lost_update.jsonl"), "--json"], 5),
        (["check", str(HISTORIES / "clean_retry.jsonl")], 0),
    ],
)
def test_a_closed_pipe_keeps_the_exit_code(args: list[str], code: int) -> None:
    out = _closed_pipe_run(args)
    assert out.returncode == code, out.stderr
    assert b"Traceback" not in out.stderr and b"BrokenPipe" not in out.stderr


def test_a_closed_pipe_on_reads_and_logs(sqlite_url: str) -> None:
    with accord.open(sqlite_url) as store:
        s = store.session("a")
        s.write("t", "text\n" * 10_000)
        s.write("b", b"\xff" * 100_000)
    for args, code in ((["read", "t"], 0), (["read", "b"], 0), (["log"], 0), (["read", "x"], 3)):
        out = _closed_pipe_run([*args, "--store", sqlite_url])
        assert out.returncode == code, (args, out.stderr)
        assert b"Traceback" not in out.stderr


def test_check_piped_into_head_exits_5() -> None:
    """`accord check f.jsonl | head -1`: the anomalies' exit code wins."""
    script = (
        f"{' '.join(ACCORD)} check {HISTORIES / 'lost_update.jsonl'} | head -1; "
        'echo "status=${PIPESTATUS[0]}" >&2'
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=BOUND)
    assert "status=5" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stdout.splitlines()) == 1


def test_check_of_a_fresh_store_is_clean(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    del store  # created (and, for SQLite and PostgreSQL, its tables), but no history
    result = CliRunner().invoke(cli, ["check", "--store", open_store.url])
    assert result.exit_code == 0, result.output
    assert "clean" in result.output and "no history yet" in result.output
    result = CliRunner().invoke(cli, ["check", "--store", open_store.url, "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["verdict"] == "clean"


def test_check_of_an_empty_file_is_still_an_error() -> None:
    result = CliRunner().invoke(cli, ["check", str(HISTORIES / "empty.jsonl")])
    assert result.exit_code == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["lease", "acquire", "k", "--mode", "bogus"], "'bogus' is not one of"),
        (["write", "k", "--expect", "abc"], "'abc' is not a valid integer"),
        (["read"], "Missing argument 'KEY'"),
        (["write", "k", "--no-such-option"], "No such option"),
        (["bogus-command"], "No such command"),
    ],
)
def test_click_parse_errors_in_json(args: list[str], words: str) -> None:
    result = CliRunner().invoke(cli, [*args, "--json"], input="x")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["error"] == "UsageError" and words in data["message"]
    assert "--help" in data["message"]
    plain = CliRunner().invoke(cli, args, input="x")
    assert plain.exit_code == 1 and words in plain.output and "{" not in plain.output


def test_ctrl_c_stops_an_exploration(tmp_path: Path) -> None:
    """A schedule never waits on the event loop; Ctrl-C still stops a long
    ``accord explore`` at once (exit 130), not after its last schedule."""
    started = tmp_path / "started"
    (tmp_path / "long_flow.py").write_text(
        "import pathlib\n"
        "\n"
        "async def workflow(world):\n"
        f"    pathlib.Path({str(started)!r}).touch()\n"
        "\n"
        "    async def agent(session):\n"
        "        for _ in range(20):\n"
        "            await session.update('k', lambda v: (v or 0) + 1)\n"
        "\n"
        "    await world.run({'a': agent, 'b': agent})\n"
    )
    with subprocess.Popen(
        [*ACCORD, "explore", "long_flow:workflow", "--schedules", "1000000"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_reaches_child,
    ) as proc:
        try:
            deadline = time.monotonic() + BOUND
            while not started.exists():
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the exploration never started"
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=BOUND) == 130
            assert proc.stderr is not None
            assert "Traceback" not in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
