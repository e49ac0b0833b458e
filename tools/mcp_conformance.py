"""Run @modelcontextprotocol/conformance against `accord mcp --http` and summarise it.

    .venv/bin/python tools/mcp_conformance.py [--scenario NAME ...]

The conformance runner cannot send an Authorization header, and every request
to `accord mcp --http` needs one; so this script puts a small pass-through
proxy in front of the server that adds one agent's bearer token, the way a
TLS-terminating reverse proxy would forward a client's header. Needs the npm
packages of tests/node (`npm ci` there). Prints one line per check and a
summary; the result is recorded in docs/mcp.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mcp_helpers import add_agent, free_port, http_server  # noqa: E402

CONFORMANCE = ROOT / "tests" / "node" / "node_modules" / ".bin" / "conformance"
HOP = {b"host", b"content-length", b"connection", b"transfer-encoding"}


def proxy_app(upstream: str, token: str) -> Starlette:
    client = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300))

    async def forward(request: Request) -> StreamingResponse:
        url = upstream + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = [(k, v) for k, v in request.headers.raw if k.lower() not in HOP]
        headers.append((b"authorization", f"Bearer {token}".encode()))
        sent = client.build_request(request.method, url, headers=headers,
                                    content=await request.body())
        answer = await client.send(sent, stream=True)
        out = {k: v for k, v in answer.headers.items() if k.lower().encode() not in HOP}
        return StreamingResponse(answer.aiter_raw(), status_code=answer.status_code,
                                 headers=out, background=BackgroundTask(answer.aclose))

    methods = ["GET", "POST", "DELETE", "PUT", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", default=[])
    args = parser.parse_args()
    if not CONFORMANCE.exists():
        print("run `npm ci` in tests/node first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/state.db"
        token = add_agent(url, "conformance")
        with http_server(url, log=Path(tmp) / "server.log") as server:
            port = free_port()
            config = uvicorn.Config(proxy_app(f"http://127.0.0.1:{server.port}", token),
                                    host="127.0.0.1", port=port, log_level="warning")
            proxy = uvicorn.Server(config)
            thread = threading.Thread(target=proxy.run, daemon=True)
            thread.start()
            while not proxy.started:
                time.sleep(0.05)
            results: list[dict[str, Any]] = []
            scenarios = args.scenario or [None]
            for scenario in scenarios:
                out = Path(tmp) / "results"
                cmd = [str(CONFORMANCE), "server", "--url", f"http://127.0.0.1:{port}/mcp",
                       "-o", str(out)]
                if scenario:
                    cmd += ["--scenario", scenario]
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
                print(done.stdout[-20000:])
                print(done.stderr[-5000:], file=sys.stderr)
                for path in sorted(out.rglob("*.json")):
                    with contextlib.suppress(ValueError):
                        results.append({"file": path.name, "data": json.loads(path.read_text())})
            proxy.should_exit = True
            thread.join(timeout=10)
    print(f"{len(results)} result files")
    for item in results:
        checks = item["data"] if isinstance(item["data"], list) else item["data"].get("checks", [])
        for check in checks:
            if isinstance(check, dict) and check.get("status") not in ("INFO",):
                print(f"{check.get('status'):8} {check.get('id')}: "
                      f"{(check.get('errorMessage') or check.get('description') or '')[:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
