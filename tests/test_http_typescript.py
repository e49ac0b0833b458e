"""The TypeScript example of docs/http.md (examples/http/example.ts, fetch only),
type-checked with tsc and run with node against a real `accord serve`.

Skipped, saying why, where node or the pinned compiler is absent (.ci/run installs
it with `npm ci` in examples/http).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import accord

from .http_helpers import add_agent, serve
from .mcp_helpers import server_env

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "http"
TSC = EXAMPLE / "node_modules" / ".bin" / "tsc"


def test_the_typescript_example_runs_against_a_real_server(
    sqlite_url: str, tmp_path: Path
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the TypeScript example cannot run here")
    if not TSC.exists():
        pytest.skip("the TypeScript compiler is not installed: run `npm ci` in examples/http")
    out = tmp_path / "dist"
    built = subprocess.run([str(TSC), "-p", str(EXAMPLE), "--outDir", str(out)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    token = add_agent(sqlite_url, "ts-agent")
    with serve(sqlite_url, log=tmp_path / "server.log") as server:
        ran = subprocess.run(
            [node, str(out / "example.js")],
            env={**server_env(), "ACCORD_HTTP": server.url, "ACCORD_TOKEN": token},
            capture_output=True, text=True, timeout=120,
        )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    steps = [json.loads(line) for line in ran.stdout.splitlines()]
    by = {s["step"]: s for s in steps}
    assert by["whoami"]["agent"] == "ts-agent"
    assert by["stale"] == {"step": "stale", "status": 412, "type": "Conflict", "current": 2}
    assert by["lease"]["token"] == 1
    assert by["history"]["ops"] == ["write", "write", "write"]  # two appends; the stale one refused
    with accord.open(sqlite_url) as store:
        reader = store.session("reader")
        assert reader.read("ts/log").value == ["first", "second"]
        assert reader.read("ts/note.md").value == "# written from TypeScript\nunder a lease\n"
