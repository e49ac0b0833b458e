"""Three parallel LangGraph nodes append a line each to one shared document.

With LangGraph's ``InMemoryStore`` two of the three lines are lost: each node
reads the document, adds its line and puts it back, and the last put wins.
With ``accord.langgraph.AccordStore`` every line survives, and the history
of the run passes ``accord check``. The same naive nodes on an AccordStore
opened with ``on_overwrite="last-write-wins"`` lose lines again, and
``accord check`` names each lost update.

The race is not left to chance: the three nodes wait for each other (a
barrier) between reading the document and writing it back, so every run
shows the worst interleaving. Run it::

    python examples/langgraph_fanout.py                  # an SQLite file in a temp dir
    python examples/langgraph_fanout.py --store postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import operator
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

import accord
from accord.langgraph import AccordStore

NAMESPACE = ("reports", "fanout")
KEY = "findings"
NODES = {
    "researcher": "- prices rose 3% in March",
    "analyst": "- the rise follows the new tariff",
    "editor": "- sources: ministry bulletin, 2 April",
}
WAIT = 10.0  # seconds a node waits for the others; a hang fails, it never passes


class State(TypedDict):
    done: Annotated[list[str], operator.add]


def naive_node(name: str, line: str, barrier: threading.Barrier) -> Callable[..., dict[str, Any]]:
    """What nodes written for LangGraph do today: get, change, put."""

    def node(state: State, *, store: BaseStore) -> dict[str, Any]:
        item = store.get(NAMESPACE, KEY)
        assert item is not None
        lines = list(item.value["lines"])
        barrier.wait(WAIT)  # every node has read the same version
        store.put(NAMESPACE, KEY, {"lines": [*lines, line]})
        return {"done": [name]}

    return node


def safe_node(name: str, line: str, barrier: threading.Barrier) -> Callable[..., dict[str, Any]]:
    """The same change through ``store.update``: re-read and retry on a conflict."""

    def node(state: State, *, store: BaseStore) -> dict[str, Any]:
        assert isinstance(store, AccordStore)
        first = [True]

        def add(doc: dict[str, Any] | None) -> dict[str, Any]:
            assert doc is not None
            if first[0]:
                first[0] = False
                barrier.wait(WAIT)  # the same worst interleaving as above
            return {"lines": [*doc["lines"], line]}

        store.update(NAMESPACE, KEY, add)
        return {"done": [name]}

    return node


def build(store: BaseStore, make_node: Callable[..., Callable[..., dict[str, Any]]]) -> Any:
    barrier = threading.Barrier(len(NODES))
    builder = StateGraph(State)
    for name, line in NODES.items():
        builder.add_node(name, make_node(name, line, barrier))
        builder.add_edge(START, name)
        builder.add_edge(name, END)
    return builder.compile(store=store)


@dataclass
class Outcome:
    """What one run left behind."""

    lines: list[str]
    error: str | None = None
    check: accord.CheckResult | None = None
    history: Path | None = None
    kept: int = field(init=False)

    def __post_init__(self) -> None:
        self.kept = sum(line in self.lines for line in NODES.values())


def seed(store: BaseStore) -> None:
    store.put(NAMESPACE, KEY, {"lines": ["# Findings"]})


def run(store: BaseStore, *, safe: bool, history: Path | None = None) -> Outcome:
    """Seed the document, run the three nodes in parallel, and report what is left.

    For an AccordStore, ``history`` (a path) receives the exported history,
    and the outcome carries what ``accord check`` found in it.
    """
    since = store.store.revision() if isinstance(store, AccordStore) else 0
    seed(store)
    graph = build(store, safe_node if safe else naive_node)
    error = None
    try:
        graph.invoke({"done": []})
    except accord.AccordError as exc:
        error = f"{type(exc).__name__}: {exc}"
    item = store.get(NAMESPACE, KEY)
    assert item is not None
    outcome = Outcome(lines=list(item.value["lines"]), error=error)
    if isinstance(store, AccordStore) and history is not None:
        store.store.export_history(history, since=since)
        outcome.history = history
        outcome.check = accord.check(history)
    return outcome


def describe(title: str, outcome: Outcome) -> str:
    out = [f"== {title}", f"   lines kept: {outcome.kept} of {len(NODES)}"]
    out += [f"   | {line}" for line in outcome.lines]
    if outcome.error:
        out.append(f"   refused: {outcome.error.splitlines()[0][:300]}")
    if outcome.check is not None:
        out.append(f"   accord check: {outcome.check.summary()}")
        for anomaly in outcome.check.anomalies:
            out.append(f"     {anomaly.name} on {anomaly.key} ({', '.join(anomaly.agents)})")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="accord store URL (default: a fresh SQLite file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.store or f"sqlite:///{Path(tmp) / 'state.db'}"
        print(describe("LangGraph InMemoryStore, naive nodes", run(InMemoryStore(), safe=False)))
        variants = [
            ("AccordStore, nodes that call store.update", "refuse", True),
            ("AccordStore, the naive nodes (plain put is refused)", "refuse", False),
            ("AccordStore(on_overwrite='last-write-wins'), naive nodes", "last-write-wins", False),
        ]
        for i, (title, policy, safe) in enumerate(variants):
            with AccordStore(url, prefix=f"run{i}", on_overwrite=policy) as store:  # type: ignore[arg-type]
                outcome = run(store, safe=safe, history=Path(tmp) / f"history{i}.jsonl")
                print(describe(title, outcome))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
