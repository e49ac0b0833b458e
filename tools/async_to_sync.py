"""Generate accord's sync modules from their async sources.

The I/O layer of accord is written once, as async code (``*_async.py``); the
sync modules are generated from it, as psycopg generates its sync classes
(``tools/async_to_sync.py`` there too), so the two faces cannot drift. The
rewrite works on tokens, so comments, docstrings and layout survive:

* ``async def`` / ``async with`` / ``async for`` -> ``def`` / ``with`` / ``for``;
* ``await x`` -> ``x``;
* names from :data:`NAMES` (``AsyncSession`` -> ``Session``,
  ``asyncio.sleep`` -> ``time.sleep``, ``__aenter__`` -> ``__enter__``, ...);
  class and module names also inside docstrings and comments;
* a block ``if True:  # ASYNC`` ... ``else:`` ... keeps only its ``else``
  body, one level out (for the few places where the faces differ: a worker
  thread against a direct call); without an ``else`` it is dropped;
* a line ending in ``# ASYNC-ONLY`` is dropped (``import asyncio  # ASYNC-ONLY``
  where the sync face needs no ``time``).

The result is tidied by ruff (imports sorted, formatted), so it passes the
same checks as the sources.

Each generated file starts with a header naming its source. Run it after
editing a source; ``--check`` (CI runs it) exits 1 with a diff when a
generated file is stale.

Run: .venv/bin/python tools/async_to_sync.py [--check]
"""

from __future__ import annotations

import argparse
import difflib
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "accord"

FILES: list[tuple[str, str]] = [
    ("_clockio_async.py", "_clockio.py"),
    ("_writepath_async.py", "_writepath.py"),
    ("_session_async.py", "session.py"),
    ("_store_async.py", "store.py"),
    ("strategies/_lease_async.py", "strategies/lease.py"),
    ("_watch_async.py", "_watch.py"),
    ("backends/_pg_listener_async.py", "backends/_pg_listener.py"),
    ("backends/postgres_async.py", "backends/postgres.py"),
    ("_core/_faces_async.py", "_core/faces.py"),
    ("strategies/_writer_role_async.py", "strategies/writer_role.py"),
    ("strategies/_queue_async.py", "strategies/queue.py"),
    ("strategies/_branch_async.py", "strategies/branch.py"),
]
"""(async source, generated sync module), relative to src/accord."""

NAMES: dict[str, str] = {
    "AsyncBackend": "Backend",
    "AsyncIterator": "Iterator",
    "AsyncGenerator": "Generator",
    "AsyncWritePath": "WritePath",
    "AsyncSession": "Session",
    "AsyncStore": "Store",
    "StopAsyncIteration": "StopIteration",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "asyncio": "time",
    "_writepath_async": "_writepath",
    "_session_async": "session",
    "_store_async": "store",
    "_lease_async": "lease",
    "_watch_async": "_watch",
    "AsyncWatching": "Watching",
    "AsyncPostgresBackend": "PostgresBackend",
    "AsyncListener": "Listener",
    "_pg_listener_async": "_pg_listener",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncConnection": "Connection",
    "_clockio_async": "_clockio",
    "AsyncBranch": "Branch",
    "AsyncLease": "Lease",
    "AsyncLeaseSet": "LeaseSet",
    "AsyncMerge": "Merge",
    "AsyncRequest": "Request",
    "AsyncSessionLike": "SessionLike",
    "AsyncStoreLike": "StoreLike",
    "_faces_async": "faces",
    "_queue_async": "queue",
    "_writer_role_async": "writer_role",
    "_branch_async": "branch",
}
"""Names the sync face spells differently (``asyncio.sleep`` becomes ``time.sleep``)."""

HEADER = (
    "# WARNING: generated from src/accord/{source} by tools/async_to_sync.py; do not edit.\n"
    "# Edit the async source and run: .venv/bin/python tools/async_to_sync.py\n"
)


def _header(source: str) -> str:
    """:data:`HEADER` for ``source``, its first line split when it is too long."""
    header = HEADER.format(source=source)
    first, _, rest = header.partition("\n")
    if len(first) > 100:
        where, _, tail = first.partition(" by ")
        header = f"{where}\n# by {tail}\n{rest}"
    return header


_IN_TEXT = [name for name in NAMES if name.startswith(("Async", "_")) and name != "asyncio"]
_WORDS = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, _IN_TEXT), key=len, reverse=True)) + r")\b"
)
"""The names also rewritten in docstrings and comments (class and module names)."""


def convert(text: str, source: str) -> str:
    """The sync module generated from the async source ``text``."""
    text = _drop_async_blocks(text)
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, int, str]] = []  # (row, start col, end col, replacement)
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.NAME and tok.string in ("async", "await"):
            nxt = tokens[i + 1]
            if tok.string == "async" and nxt.string not in ("def", "with", "for"):
                continue
            # Drop the word and the space after it (``await x`` -> ``x``).
            row, col = tok.start
            end = nxt.start[1] if nxt.start[0] == row else tok.end[1]
            edits.append((row, col, end, ""))
        elif tok.type == tokenize.NAME and tok.string in NAMES:
            edits.append((tok.start[0], tok.start[1], tok.end[1], NAMES[tok.string]))
        elif tok.type in (tokenize.STRING, tokenize.COMMENT) and tok.start[0] == tok.end[0]:
            new = _WORDS.sub(lambda m: NAMES[m.group(1)], tok.string)
            if new != tok.string:
                edits.append((tok.start[0], tok.start[1], tok.end[1], new))
        elif tok.type == tokenize.STRING:
            # A multi-line string (a docstring): rewrite each of its lines.
            for row in range(tok.start[0], tok.end[0] + 1):
                line = lines[row - 1]
                new = _WORDS.sub(lambda m: NAMES[m.group(1)], line)
                if new != line:
                    lines[row - 1] = new
    for row, start, end, new in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + new + line[end:]
    return _tidy(_header(source) + "".join(lines), source)


def _tidy(text: str, source: str) -> str:
    """Sort the imports and format the generated module with the project's ruff
    (a rename can move an import out of order; a dropped ``await`` can let a
    call fit on one line)."""
    name = str(SRC / source.replace("_async", ""))
    for args in (["check", "--select", "I,RUF022", "--fix", "--quiet"], ["format", "--quiet"]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--stdin-filename", name, "-"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"ruff failed on the module generated from {source}:\n{done.stderr}")
        text = done.stdout
    return text


_IF_ASYNC = re.compile(r"^(?P<indent>[ ]*)if True:  # ASYNC\n", re.M)


def _drop_async_blocks(text: str) -> str:
    """Keep the ``else`` body of every ``if True:  # ASYNC`` block, dedented;
    drop every line ending in ``# ASYNC-ONLY``."""
    lines = [
        ln for ln in text.splitlines(keepends=True) if not ln.rstrip().endswith("# ASYNC-ONLY")
    ]
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _IF_ASYNC.match(lines[i])
        if m is None:
            out.append(lines[i])
            i += 1
            continue
        indent = m.group("indent")
        i += 1
        # Skip the async body (every line indented deeper, and blank lines).
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
            i += 1
        if i < len(lines) and lines[i] == f"{indent}else:\n":
            i += 1
            # Keep the else body, one level out.
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + "    ")):
                line = lines[i]
                out.append(line[4:] if line.strip() else line)
                i += 1
    return "".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 with a diff if a generated file is stale"
    )
    args = parser.parse_args()
    stale = 0
    for source, target in FILES:
        text = (SRC / source).read_text(encoding="utf-8")
        generated = convert(text, source)
        path = SRC / target
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == generated:
            continue
        if args.check:
            stale += 1
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    generated.splitlines(keepends=True),
                    f"src/accord/{target} (on disk)",
                    f"src/accord/{target} (generated from {source})",
                )
            )
        else:
            path.write_text(generated, encoding="utf-8")
            print(f"wrote src/accord/{target} from {source}")
    if stale:
        print(
            f"\n{stale} generated file(s) are stale: run .venv/bin/python tools/async_to_sync.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
