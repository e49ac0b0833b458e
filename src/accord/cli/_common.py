"""What every CLI command shares: --store, --agent, --json, errors, exit codes.

Exit codes: 0 ok, 1 usage error, 2 store unavailable, 3 conflict or
precondition failed, 4 lease or fencing refused, 5 anomalies found (check),
6 plan violations, 130 stopped with Ctrl-C (SIGINT).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from ..errors import AccordError, InvalidValue, UsageError
from ..records import MAX_JSON_DEPTH, to_wire

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_UNAVAILABLE = 2
EXIT_CONFLICT = 3
EXIT_LEASE = 4
EXIT_ANOMALIES = 5
EXIT_PLAN = 6
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped with Ctrl-C

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def store_option(fn: F) -> F:
    return click.option(
        "--store",
        "store_url",
        envvar="ACCORD_URL",
        default=None,
        metavar="URL",
        help="Store URL (default: ACCORD_URL, else sqlite:///.accord/state.db).",
    )(fn)


def agent_option(fn: F) -> F:
    return click.option(
        "--agent",
        envvar="ACCORD_AGENT",
        default=None,
        metavar="NAME",
        help="Agent name (default: ACCORD_AGENT).",
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")(fn)


def common(fn: F) -> F:
    """--store, --agent and --json, and the error handling every command wants."""
    return store_option(agent_option(json_option(handle_errors(fn))))


def handle_errors(fn: F) -> F:
    """Turn accord errors into a message on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AccordError as exc:
            report(exc, bool(kwargs.get("as_json")))
            sys.exit(exc.exit_code)
        except OSError as exc:
            # A file named on the command line that cannot be opened (a
            # missing directory, no permission): the library raises the
            # OSError a Python caller expects; a command line user wants a
            # sentence. Errors without a file name are not ours to explain.
            if exc.filename is None:
                raise
            report(
                UsageError(
                    f"Cannot open {exc.filename}: {exc.strerror or exc}. Check the path (its "
                    "directory must exist) and the permissions, then run the command again."
                ),
                bool(kwargs.get("as_json")),
            )
            sys.exit(EXIT_USAGE)

    return wrapper  # type: ignore[return-value]


def report(exc: AccordError, as_json: bool) -> None:
    """Print an error the way every command does: JSON on stdout with --json,
    else a line on stderr."""
    if as_json:
        payload = {"error": type(exc).__name__, "message": exc.render("cli")}
        for name in ("key", "expected", "current", "writers", "path"):
            if hasattr(exc, name):
                payload[name] = getattr(exc, name)
        click.echo(json.dumps(payload, default=str))
    else:
        err_console.print(f"[bold red]{type(exc).__name__}:[/] ", end="")
        err_console.out(exc.render("cli"))


def open_store(store_url: str | None, **kwargs: Any) -> Any:
    from ..store import open as open_

    return open_(store_url, **kwargs)


def require_agent(agent: str | None) -> str:
    if not agent:
        raise UsageError("Name the agent: pass --agent NAME or set ACCORD_AGENT.")
    return agent


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        # Bytes must go through wire(), which says they are base64; str()
        # here would print "b'...'" and lose the type.
        raise TypeError("bytes in JSON output: pass the value through wire()")
    return str(obj)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, default=_json_default, indent=None))


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "no")


def discard_stdout() -> None:
    """Send the rest of standard output to /dev/null: its reader went away.

    As Python's documentation advises for SIGPIPE: output nobody reads is
    dropped, and the command finishes and exits with its own exit code
    (`accord check h.jsonl | head -1` still exits 5 when it found
    anomalies), instead of dying on BrokenPipeError at the next write or at
    the interpreter's last flush.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    finally:
        os.close(devnull)


class PipeSafeStdout:
    """Standard output that turns a closed pipe into :func:`discard_stdout`."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            discard_stdout()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            discard_stdout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def wire(value: Any, name: str = "value", kind_name: str = "kind") -> dict[str, Any]:
    """A stored value as JSON output carries it: ``{kind_name: kind, name: wire}``.

    The one form of every JSON surface (:func:`accord.records.to_wire`):
    text and JSON data as they are, bytes as base64 with the kind
    ``"bytes"``, so every byte round-trips (``accord.records.from_wire``).
    """
    kind, data = to_wire(value)
    return {kind_name: kind, name: data}


def print_value(value: Any) -> None:
    """Print a stored value for people: text as is, bytes raw, JSON indented."""
    if isinstance(value, bytes):
        try:
            sys.stdout.buffer.write(value)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            discard_stdout()
    elif isinstance(value, str):
        click.echo(value, nl=not value.endswith("\n"))
    else:
        click.echo(json.dumps(value, indent=2))


def read_value(file_: str, json_value: bool, binary: bool) -> Any:
    """The value given on the command line: a file, or standard input for ``-``."""
    try:
        raw = sys.stdin.buffer.read() if file_ == "-" else Path(file_).read_bytes()
    except OSError as exc:
        raise UsageError(
            f"Cannot read the value from {file_}: {exc.strerror or exc}; nothing was written. "
            "Name a readable file with --file, or pass the value on standard input."
        ) from exc
    if binary:
        return raw
    if json_value:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise UsageError(
                f"--json-value: the input is not JSON ({exc}); nothing was written. Fix the "
                "JSON, or drop --json-value to store the input as text."
            ) from exc
        except RecursionError as exc:
            raise InvalidValue(
                f"--json-value: the input nests deeper than accord's limit of {MAX_JSON_DEPTH} "
                "levels of lists and objects; nothing was written. Flatten it and write again.",
                path="$",
            ) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError("The input is not UTF-8 text; pass --binary to take it as bytes.") from exc


def value_options(fn: Any) -> Any:
    """--file, --json-value and --binary: how a command takes a value."""
    fn = click.option("--binary", is_flag=True, help="Send the input as bytes.")(fn)
    fn = click.option("--json-value", is_flag=True, help="Parse the input as JSON.")(fn)
    return click.option(
        "--file",
        "file_",
        type=click.Path(dir_okay=False, allow_dash=True),
        default="-",
        help="Read the value from this file (default: standard input).",
    )(fn)
