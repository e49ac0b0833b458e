"""Shared by the HTTP tests and bench/bench_http.py: the app in process, a real
``accord serve`` process, and a small client that speaks the API's conventions."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import accord
from accord import credentials

from .mcp_helpers import free_port, server_env

START_TIMEOUT = 60.0


def add_agent(store_url: str, name: str, manifest: str | None = None) -> str:
    """Create ``name``'s credential in the store at ``store_url``; return its token."""
    with accord.open(store_url, manifest=manifest) as store:
        return credentials.add(store, name)[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


TEXT = {"Content-Type": "text/plain; charset=utf-8"}
JSON = {"Content-Type": "application/json"}


def if_match(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


@dataclass
class Server:
    """A running ``accord serve`` process on 127.0.0.1."""

    store_url: str
    port: int
    manifest: str | None = None
    log: Path | None = None
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    module: str = "accord"  # run as python -m MODULE serve ... (a test's wrapper)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [sys.executable, "-m", self.module, "serve", "--port", str(self.port),
                "--store", self.store_url, *self.extra]
        if self.manifest:
            args += ["--manifest", self.manifest]
        out: Any = subprocess.DEVNULL
        if self.log is not None:
            out = self.log.open("ab")
        try:
            self.proc = subprocess.Popen(args, env=server_env(**self.env), stdout=out,
                                         stderr=out)
        finally:
            if self.log is not None:
                out.close()  # the child keeps its own descriptor
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"accord serve exited with {self.proc.returncode}"
                    + (f": {self.log.read_text()[-2000:]}" if self.log else "")
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"accord serve did not answer within {START_TIMEOUT:g} s")

    def kill(self) -> None:
        """SIGKILL the server process: no shutdown, no flush (not for --workers, whose
        worker processes would outlive it)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


@contextlib.contextmanager
def serve(
    store_url: str, *, manifest: str | None = None, log: Path | None = None,
    extra: list[str] | None = None,
) -> Iterator[Server]:
    server = Server(store_url, free_port(), manifest, log, list(extra or []))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def append_until_done(
    client: httpx.Client, key: str, item: Any, *, attempts: int = 10_000
) -> int:
    """Append ``item`` to the JSON list at ``key`` the careful way: GET, change,
    PUT with If-Match, and on 412 start again from a new GET. Returns the retries."""
    for retry in range(attempts):
        got = client.get(f"/v1/keys/{key}")
        assert got.status_code == 200, got.text
        version = int(got.headers["etag"].strip('"'))
        put = client.put(f"/v1/keys/{key}", json=[*got.json(), item],
                         headers={**JSON, **if_match(version)})
        if put.status_code == 200:
            return retry
        assert put.status_code == 412, put.text
    raise AssertionError(f"{attempts} attempts to append to {key} all lost")
