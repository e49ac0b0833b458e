"""Bad input on the command line gets a clear error and an exit code, never a traceback.

Issue 11 item 9: each case below printed a Python traceback before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import accord
from accord.cli import cli


def invoke(*args: str, input: bytes | str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    # A traceback means click caught an exception the command did not handle.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.output


@pytest.mark.parametrize("command", [["write", "k"], ["fork", "k"], ["submit", "k"]])
def test_value_file_that_does_not_exist(sqlite_url: str, command: list[str]) -> None:
    with accord.open(sqlite_url) as store:
        store.session("a").write("k", "x")
    code, out = invoke(
        *command, "--file", "/nonexistent/value.txt", "--store", sqlite_url, "--agent", "a"
    )
    assert code == 1
    assert "Cannot read the value from /nonexistent/value.txt" in out
    assert "nothing was written" in out
    with accord.open(sqlite_url) as store:
        assert [e.op for e in store.history()] == ["write"]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://[bad", "Cannot parse the store URL"),
        ("postgresql://user:secret@[bad/db", "***@[bad/db"),
        ("sqlite:///x.db?busy_timeout=abc", "Invalid busy_timeout='abc'"),
        ("sqlite:///x.db?busy_timeout=-1", "Invalid busy_timeout='-1'"),
        ("sqlite:///x.db?busy_timeout=nan", "Invalid busy_timeout='nan'"),
        ("sqlite:///x.db?busy_timeout=", "Invalid busy_timeout=''"),
        ("sqlite:///x.db?busy_timout=5", "Unknown option 'busy_timout'"),
        ("sqlite:///x.db?synchronous=sometimes", "Invalid synchronous='sometimes'"),
        ("sqlite:///x.db?busy_timeout=1&busy_timeout=2", "given twice"),
        ("memory://shared", "takes no name or options"),
        ("memory://?x=1", "takes no name or options"),
    ],
)
def test_bad_store_urls(tmp_path: Path, url: str, words: str) -> None:
    os.chdir(tmp_path)
    code, out = invoke("read", "k", "--store", url)
    assert code == 1, out
    assert "UsageError" in out and words in out
    assert "secret" not in out
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("pool_size=1.5", "Invalid pool_size"),
        ("poll=inf", "Invalid poll"),
        ("retry_timeout=inf", "Invalid retry_timeout"),
        ("schema=a&schema=b", "given twice"),
    ],
)
def test_bad_postgres_options_are_refused_before_connecting(query: str, words: str) -> None:
    # Port 1: nothing listens there; these must fail before any connection.
    code, out = invoke("read", "k", "--store", f"postgresql://127.0.0.1:1/test?{query}")
    assert code == 1, out
    assert words in out


def test_postgres_pool_size_as_a_whole_float(open_store) -> None:  # type: ignore[no-untyped-def]
    url = open_store.url
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    with accord.open(f"{url}&pool_size=2.0") as store:
        assert store.backend._pool_size == 2  # type: ignore[attr-defined]


@pytest.fixture(params=["postgresql"])
def backend_name(request: pytest.FixtureRequest) -> str:
    from tests.conftest import require_postgres

    require_postgres()
    return str(request.param)


def test_sqlite_options_that_are_right_still_work(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}?busy_timeout=0.5&synchronous=full"
    with accord.open(url) as store:
        store.session("a").write("k", "x")
        assert store.backend._busy_timeout == 0.5  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", [["plan", "--from-history"], ["check"]])
def test_binary_history_file(tmp_path: Path, command: list[str]) -> None:
    history = tmp_path / "binary.jsonl"
    history.write_bytes(b'{"agent": "a"}\n\xff\xfe\x00\x81garbage\n')
    code, out = invoke(*command, str(history))
    assert code == 1, out
    assert "HistoryFormatError" in out and "line" in out


def test_otel_files_that_are_not_text(tmp_path: Path) -> None:
    binary = tmp_path / "spans.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    mapping = tmp_path / "map.toml"
    mapping.write_text(
        '[[tool]]\nname = "w"\nop = "write"\nkey = "arguments.path"\nvalue = "arguments.v"\n'
    )
    code, out = invoke("check", str(binary), "--otel", str(binary))
    assert code == 1 and "UsageError" in out and "not valid TOML" in out
    code, out = invoke("check", str(binary), "--otel", str(mapping))
    assert code == 1 and "not UTF-8 text" in out


@pytest.mark.parametrize(
    "command",
    [
        ["export", "{missing}/h.jsonl"],
        ["export", "--shiviz", "{missing}/h.log"],
        ["log", "--timeline", "{missing}/t.svg"],
    ],
)
def test_output_file_in_a_missing_directory(
    sqlite_url: str, tmp_path: Path, command: list[str]
) -> None:
    with accord.open(sqlite_url) as store:
        store.session("a").write("k", "x")
    missing = tmp_path / "no" / "such" / "dir"
    args = [a.format(missing=missing) for a in command]
    code, out = invoke(*args, "--store", sqlite_url)
    assert code == 1, out
    assert f"Cannot open {missing}" in out
    code, out = invoke(*args, "--store", sqlite_url, "--json")
    assert code == 1 and json.loads(out)["error"] == "UsageError"


def test_write_manifest_into_a_missing_directory(tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    with accord.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        store.session("a").write("k", "x")
        store.export_history(history)
    code, out = invoke(
        "plan", "--from-history", str(history), "--write-manifest", str(tmp_path / "no" / "m.toml")
    )
    assert code == 1 and "Cannot open" in out


SURROGATE_ARGS = [
    ["read", "k\udcff"],
    ["write", "k\udcff", "--agent", "a"],
    ["write", "k2", "--agent", "a\udcff"],
    ["write", "k3", "--agent", "a", "--idempotency-key", "i\udcff"],
    ["branch", "read", "k", "b\udcff"],
    ["merge", "k", "b\udcff", "--agent", "a"],
    ["accept", "k", "r\udcff", "--expect", "1", "--agent", "a"],
    ["reject", "k", "r\udcff", "--reason", "x", "--agent", "a"],
    ["log", "--key", "k\udcff"],
    ["lease", "acquire", "k\udcff", "--agent", "a"],
]


@pytest.mark.parametrize("args", SURROGATE_ARGS, ids=lambda a: " ".join(a[:2]))
def test_arguments_that_are_not_utf8(sqlite_url: str, args: list[str]) -> None:
    """An argument made of bytes that are not UTF-8 reaches Python as a surrogate."""
    with accord.open(sqlite_url) as store:
        store.session("a").write("k", "base\n")
    env = {**os.environ, "PYTHONUTF8": "1"}
    argv = [os.fsencode(a) for a in [*args, "--store", sqlite_url]]
    out = subprocess.run(
        [sys.executable.encode(), b"-m", b"accord", *argv],
        capture_output=True,
        input=b"x",
        timeout=60,
        env=env,
    )
    assert out.returncode == 1, out.stderr
    assert b"Traceback" not in out.stderr
    name = out.stderr.split(b":", 1)[0].decode()
    assert issubclass(getattr(accord, name), accord.UsageError), out.stderr


@pytest.mark.parametrize(
    ("blocked", "package"), [("psycopg_pool", "psycopg-pool"), ("psycopg", "psycopg")]
)
def test_a_missing_postgres_package_is_named(blocked: str, package: str) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{blocked!r}] = None  # as if it were not installed\n"
        "import accord\n"
        "try:\n"
        "    accord.open('postgresql://127.0.0.1:1/test')\n"
        "except accord.BackendUnavailable as exc:\n"
        "    print(exc.message)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"needs the package {package!r}" in out.stdout
    assert "pip install 'accord[postgres]'" in out.stdout
