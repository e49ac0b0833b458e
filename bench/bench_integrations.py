"""What the framework adapters cost: AccordStore and AccordSession against accord itself.

The raw engine doing the least possible work here is an accord Session on
the same SQLite file, so each ratio is the adapter's own cost (key mapping,
the item envelope, the session lookup per call, the thread hop of the async
face), measured in the same run, alternating sides per round:

- AccordStore.get            vs Session.read of the same key
- AccordStore.put(expect=)   vs Session.write(expect=) of the same value
- AccordStore.update         vs Session.update
- AccordSession.add_items    vs Session.update appending to a list (no event loop, no
                             thread hop; both lists grow alike during the run)
- accord.otel.instrument     Session.write with live spans (SDK, no exporter) vs without

With ``--postgres URL`` (or ACCORD_TEST_POSTGRES) it also measures the async
face on PostgreSQL, before and after it became native, against the raw
engine doing the least work there, an ``accord.aio`` AsyncSession on the same
database, with 1 and 8 coroutines at once (each on its own item):

- aget / aupdate via asyncio.to_thread(get / update)   (before: the old a* methods)
- aget / aupdate native                                (after: on accord.aio)
- AccordSession.add_items, the same two ways

For the cost against LangGraph's own stores, see docs/integrations.md:
InMemoryStore is a dict in the process, so the only fair comparison for a
store shared between processes is the engine underneath.

Run: .venv/bin/python bench/bench_integrations.py [--seconds 2] [--rounds 10]
     [--postgres postgresql://...] [--only-async]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import accord
from _timing import paired
from accord.agents_sdk import AccordSession
from accord.langgraph import AccordStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--postgres", default=os.environ.get("ACCORD_TEST_POSTGRES"))
    parser.add_argument("--only-async", action="store_true")
    args = parser.parse_args()
    if not args.only_async:
        with tempfile.TemporaryDirectory() as tmp:
            store = accord.open(f"sqlite:///{Path(tmp) / 'state.db'}")
            run(store, args.seconds, args.rounds)
            store.close()
    if args.postgres:
        run_async(args.postgres, args.seconds, args.rounds)
    print(f"load average: {os.getloadavg()[0]:.2f}")


def row(name: str, ours: float, bare: float, ratio: float) -> None:
    print(f"{name:<34} {ours:>9,.0f}/s   raw {bare:>9,.0f}/s   ratio {ratio:.2f}")


def run(store: accord.Store, seconds: float, rounds: int) -> None:
    lg = AccordStore(store, agent="bench")
    raw = store.session("raw")
    value = {"text": "x" * 200, "n": 1}
    lg.put(("bench",), "item", value)
    raw.write("raw/item", {"created_at": "", "updated_at": "", "value": value}, expect=0)
    print(f"SQLite, {seconds:g}s per side in {rounds} rounds")
    row("AccordStore.get", *paired(lambda: lg.get(("bench",), "item"),
                                   lambda: raw.read("raw/item"), seconds, rounds))

    state = {"lg": 1, "raw": 1}

    def lg_put() -> None:
        lg.put(("bench",), "item", value, expect=state["lg"])
        state["lg"] += 1

    def raw_put() -> None:
        raw.write("raw/item", value, expect=state["raw"])
        state["raw"] += 1

    row("AccordStore.put(expect=)", *paired(lg_put, raw_put, seconds, rounds))
    row("AccordStore.update", *paired(
        lambda: lg.update(("bench",), "item", lambda v: {**(v or {}), "n": 2}),
        lambda: raw.update("raw/item", lambda v: v), seconds, rounds))

    session = AccordSession("bench", store, agent="bench")
    item: dict[str, Any] = {"role": "user", "content": "hello"}

    loop = asyncio.new_event_loop()

    def add() -> None:
        loop.run_until_complete(session.add_items([item]))

    def add_raw() -> None:
        raw.update("raw/list", lambda old: [*(old or []), item])

    # The conversation grows on both sides alike; keep it short so the
    # list's size does not dominate.
    row("AccordSession.add_items", *paired(add, add_raw, seconds / 4, rounds, warmup=5))
    loop.close()

    try:
        from opentelemetry.sdk.trace import TracerProvider

        from accord.otel import instrument
    except ImportError:  # pragma: no cover - the otel extra is in dev
        return
    traced_store = accord.open(store.url)
    inst = instrument(traced_store, TracerProvider())
    traced = traced_store.session("traced")
    traced.write("otel/a", "v", expect=0)
    raw.write("otel/b", "v", expect=0)
    versions = {"a": 1, "b": 1}

    def traced_write() -> None:
        versions["a"] = traced.write("otel/a", "v", expect=versions["a"]).version

    def plain_write() -> None:
        versions["b"] = raw.write("otel/b", "v", expect=versions["b"]).version

    row("write with accord.otel spans", *paired(traced_write, plain_write, seconds, rounds))
    inst.uninstrument()
    traced_store.close()


def run_async(base_url: str, seconds: float, rounds: int) -> None:
    from accord import aio

    schema = "bench_" + uuid.uuid4().hex[:8]
    url = f"{base_url}{'&' if '?' in base_url else '?'}schema={schema}"
    store = accord.open(url)
    loop = asyncio.new_event_loop()
    astore = loop.run_until_complete(aio.open(url))
    try:
        _run_async(store, astore, loop, seconds, rounds)
    finally:
        loop.run_until_complete(astore.close())
        loop.close()
        store.close()
        import psycopg

        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _run_async(
    store: accord.Store, astore: Any, loop: asyncio.AbstractEventLoop, seconds: float,
    rounds: int,
) -> None:
    lg = AccordStore(store, agent="bench")
    print(f"PostgreSQL, async face, {seconds:g}s per side in {rounds} rounds "
          "(ops/s over all coroutines; raw: accord.aio AsyncSession)")
    for n in (1, 8):
        _measure(n, lg, store, astore.session("raw"), loop, seconds, rounds)
    loop.run_until_complete(lg.aclose())


def _measure(
    n: int, lg: AccordStore, store: accord.Store, raw: Any, loop: asyncio.AbstractEventLoop,
    seconds: float, rounds: int,
) -> None:
    ns = ("bench",)
    value = {"text": "x" * 200, "n": 1}
    item: dict[str, Any] = {"role": "user", "content": "hello"}

    def gather(make: Callable[[int], Awaitable[Any]]) -> Callable[[], None]:
        async def all_of() -> None:
            await asyncio.gather(*(make(i) for i in range(n)))

        def call() -> None:
            loop.run_until_complete(all_of())

        return call

    def pair(name: str, ours: Callable[[], None], bare: Callable[[], None],
             share: float = 1.0) -> None:
        o, b, ratio = paired(ours, bare, seconds * share, rounds, warmup=5)
        row(name, o * n, b * n, ratio)

    def bump(v: Any) -> dict[str, Any]:
        return {**(v or {}), "n": 2}

    def short(old: Any) -> list[Any]:
        return [*(old or [])[-8:], item]

    def key(i: int) -> str:
        return f"k{n}-{i}"

    for i in range(n):
        lg.put(ns, key(i), value)
        envelope = {"created_at": "", "updated_at": "", "value": value}
        loop.run_until_complete(raw.write(f"raw/{key(i)}", envelope, expect=0))
    raw_get = gather(lambda i: raw.read(f"raw/{key(i)}"))
    raw_update = gather(lambda i: raw.update(f"raw/{key(i)}", bump))
    pair(f"aget x{n} to_thread (before)",
         gather(lambda i: asyncio.to_thread(lg.get, ns, key(i))), raw_get)
    pair(f"aget x{n} native (after)", gather(lambda i: lg.aget(ns, key(i))), raw_get)
    pair(f"aupdate x{n} to_thread (before)",
         gather(lambda i: asyncio.to_thread(lg.update, ns, key(i), bump)), raw_update)
    pair(f"aupdate x{n} native (after)",
         gather(lambda i: lg.aupdate(ns, key(i), bump)), raw_update)

    # The conversation: each coroutine its own session id; lists kept short
    # on every side (add_items itself appends to a growing list).
    sessions = [AccordSession(f"bench-{n}-{i}", store, agent="bench") for i in range(n)]
    raw_add = gather(lambda i: raw.update(f"raw/list-{key(i)}", short))

    def old_add(i: int) -> Awaitable[Any]:
        # What add_items did before: the sync session's update in a thread.
        s = sessions[i]
        return asyncio.to_thread(s._session.update, s.key, short)

    async def new_add(i: int) -> None:
        # What add_items does now (its update, on the session's async twin).
        s = sessions[i]
        await (await s.asession()).update(s.key, short)

    pair(f"add_items x{n} to_thread (before)", gather(old_add), raw_add, 0.5)
    pair(f"add_items x{n} native (after)", gather(new_add), raw_add, 0.5)
    for s in sessions:
        loop.run_until_complete(s.aclose())


if __name__ == "__main__":
    main()
