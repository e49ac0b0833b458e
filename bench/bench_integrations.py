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

For the cost against LangGraph's own stores, see docs/integrations.md:
InMemoryStore is a dict in the process, so the only fair comparison for a
store shared between processes is the engine underneath.

Run: .venv/bin/python bench/bench_integrations.py [--seconds 2] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = accord.open(f"sqlite:///{Path(tmp) / 'state.db'}")
        run(store, args.seconds, args.rounds)
        store.close()
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


if __name__ == "__main__":
    main()
