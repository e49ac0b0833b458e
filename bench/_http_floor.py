"""The floor for bench/bench_http.py: a bare ASGI app (no framework, no accord.http)
on uvicorn that does per request what accord's route does at the least, in a
worker thread: a read checks the bearer token against the store, then
``session.read``; a write takes the token from memory once it was verified
(:class:`accord.credentials.TokenCache`) and runs ``session.write`` with
``expect`` from If-Match inside :func:`accord.credentials.presenting`, so the
write's own transaction checks the token; it answers with the ETag.

Run by bench_http.py --floor: python bench/_http_floor.py STORE_URL PORT [--no-token]
[--check-writes] (``--no-token``: no token check at all, every request acting as
agent-0, to show what the check costs; only meaningful with one client.
``--check-writes``: a write checks the token against the store first, as accord
did before the check moved into the write.)
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import uvicorn

import accord
from accord import credentials
from accord.errors import AccordError


def make(store: accord.Store, check_token: bool = True, fold: bool = True) -> Any:
    tokens = credentials.TokenCache(store)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path: str = scope["path"]
        if path == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        headers = dict(scope["headers"])
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        key = path[len("/v1/keys/"):]
        token = headers.get(b"authorization", b"").decode()[len("Bearer "):]
        method = scope["method"]
        match = headers.get(b"if-match", b"").decode().strip('"')

        def work() -> tuple[int, bytes, int]:
            if not check_token:
                session = store.session("agent-0")
                try:
                    if method == "GET":
                        doc = session.read(key)
                        return 200, json.dumps(doc.value).encode(), doc.version
                    doc = session.write(key, json.loads(body), expect=int(match))
                    return 200, json.dumps({"version": doc.version}).encode(), doc.version
                except AccordError as exc:
                    return 412, exc.message.encode(), 0
            presented = tokens.recall(token) if fold and method != "GET" else None
            if presented is None:
                presented = tokens.verify(token)
            if presented is None:
                return 401, b"{}", 0
            session = store.session(presented.agent)
            try:
                if method == "GET":
                    doc = session.read(key)
                    return 200, json.dumps(doc.value).encode(), doc.version
                with credentials.presenting(presented):
                    doc = session.write(key, json.loads(body), expect=int(match))
                return 200, json.dumps({"version": doc.version}).encode(), doc.version
            except AccordError as exc:
                return 412, exc.message.encode(), 0

        status, out, version = await anyio.to_thread.run_sync(work)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"etag", f'"{version}"'.encode())]})
        await send({"type": "http.response.body", "body": out})

    return app


if __name__ == "__main__":
    url, port = sys.argv[1], int(sys.argv[2])
    check_token = "--no-token" not in sys.argv[3:]
    fold = "--check-writes" not in sys.argv[3:]
    with accord.open(url) as opened:
        uvicorn.run(make(opened, check_token, fold), host="127.0.0.1", port=port,
                    log_level="warning", access_log=False)
