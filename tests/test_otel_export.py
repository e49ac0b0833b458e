"""accord.otel: accord operations as spans; export, import, and the same anomalies.

The spans go through the real OpenTelemetry SDK (a TracerProvider with a span
processor) into a JSON-lines file, and come back through the importer that
``accord check --otel`` uses (accord.history.otel).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import accord
from accord.cli import cli
from accord.history.otel import ImportReport, import_spans
from accord.otel import (
    JsonLinesSpanExporter,
    export_history,
    instrument,
    mapping,
    write_mapping,
)

BACKENDS = pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"], indirect=True)


def provider(path: Path) -> TracerProvider:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    return tp


def lost_update_scenario(store: accord.Store) -> None:
    """A lost update on doc, a conflict retried on clean, a read of a missing key."""
    seed = store.session("seed")
    seed.write("doc", "# Doc\n", expect=0)
    seed.write("clean", "c1", expect=0)
    a, b = store.session("agent-a"), store.session("agent-b")
    da, db = a.read("doc"), b.read("doc")
    a.write("doc", da.value + "a\n", expect=da.version)
    b.write("doc", db.value + "b\n", force=True)  # erases a's line without having seen it
    ca, cb = a.read("clean"), b.read("clean")
    b.write("clean", "c2", expect=cb.version)
    with pytest.raises(accord.Conflict):
        a.write("clean", "c3", expect=ca.version)
    ca = a.read("clean")
    a.write("clean", "c3", expect=ca.version)
    with pytest.raises(accord.NotFound):
        b.read("missing")


def clean_scenario(store: accord.Store) -> None:
    seed = store.session("seed")
    seed.write("doc", "0", expect=0)
    for agent in ("agent-a", "agent-b", "agent-c"):
        s = store.session(agent)
        s.update("doc", lambda v, agent=agent: f"{v}+{agent}")
    a = store.session("agent-a")
    a.delete("doc", expect=a.read("doc").version)


def findings(result: accord.CheckResult) -> set[tuple[str, str | None, frozenset[str]]]:
    return {(a.name, a.key, frozenset(a.agents)) for a in [*result.anomalies, *result.unknown]}


def native_check(store: accord.Store, tmp_path: Path) -> accord.CheckResult:
    path = tmp_path / "native.jsonl"
    store.export_history(path)
    return accord.check(path)


def imported_check(spans: Path) -> tuple[accord.CheckResult, ImportReport]:
    report = ImportReport()
    events = import_spans(spans, mapping(), report)
    assert not report.problems, report.problems
    return accord.check(events), report


@BACKENDS
@pytest.mark.parametrize("scenario", [lost_update_scenario, clean_scenario])
def test_export_history_round_trip(
    open_store: Callable[..., accord.Store], tmp_path: Path,
    scenario: Callable[[accord.Store], None],
) -> None:
    store = open_store(record_reads=True)
    scenario(store)
    native = native_check(store, tmp_path)
    spans = tmp_path / "spans.jsonl"
    count = export_history(tmp_path / "native.jsonl", provider(spans))
    assert count == native.events
    imported, report = imported_check(spans)
    assert report.spans == count
    assert findings(imported) == findings(native)
    assert imported.verdict == native.verdict
    if scenario is lost_update_scenario:
        assert findings(native) == {("lost-update", "doc", frozenset({"agent-a", "agent-b"}))}
        assert imported.lost_writes == native.lost_writes == 1
    else:
        assert native.ok


@BACKENDS
@pytest.mark.parametrize("scenario", [lost_update_scenario, clean_scenario])
def test_live_instrumentation_round_trip(
    open_store: Callable[..., accord.Store], tmp_path: Path,
    scenario: Callable[[accord.Store], None],
) -> None:
    store = open_store()  # reads are not recorded in the history: the spans have them
    spans = tmp_path / "spans.jsonl"
    inst = instrument(store, provider(spans))
    scenario(store)
    inst.uninstrument()
    native = native_check(store, tmp_path)
    imported, _ = imported_check(spans)
    assert findings(imported) == findings(native)
    assert imported.verdict == native.verdict


def test_cli_check_reads_the_spans(tmp_path: Path) -> None:
    store = accord.open(f"sqlite:///{tmp_path / 's.db'}")
    spans = tmp_path / "spans.jsonl"
    inst = instrument(store, provider(spans))
    lost_update_scenario(store)
    inst.uninstrument()
    store.close()
    result = CliRunner().invoke(
        cli, ["check", str(spans), "--otel", str(write_mapping(tmp_path / "map.toml"))]
    )
    assert result.exit_code == 5, result.output
    assert "lost-update on doc (agent-a, agent-b)" in result.output


def test_span_shape_and_nesting() -> None:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    store = accord.open("memory://")
    early = store.session("agent-a")  # taken before instrument(): traced as well
    inst = instrument(store, tp)
    with tp.get_tracer("framework").start_as_current_span("execute_tool write_doc"):
        early.write("docs/plan.md", "v1", expect=0)
    with pytest.raises(accord.Conflict):
        store.session("agent-b").write("docs/plan.md", "v2", expect=0)
    spans = exporter.get_finished_spans()
    write = next(s for s in spans if s.name == "accord.write" and s.status.is_ok)
    parent = next(s for s in spans if s.name == "execute_tool write_doc")
    assert write.parent is not None and write.parent.span_id == parent.context.span_id
    attrs: dict[str, Any] = dict(write.attributes or {})
    assert attrs["gen_ai.tool.name"] == "accord.write"
    assert attrs["gen_ai.agent.id"] == "agent-a"
    assert json.loads(attrs["gen_ai.tool.call.arguments"])["key"] == "docs/plan.md"
    assert json.loads(attrs["gen_ai.tool.call.arguments"])["hash"].startswith("sha256:")
    assert "v1" not in attrs["gen_ai.tool.call.arguments"]  # hashes, never values
    assert json.loads(attrs["gen_ai.tool.call.result"])["version"] == 1
    refused = next(s for s in spans if s.name == "accord.write" and not s.status.is_ok)
    assert refused.attributes is not None and refused.attributes["accord.outcome"] == "conflict"
    assert "Conflict on docs/plan.md" in (refused.status.description or "")
    inst.uninstrument()
    before = len(exporter.get_finished_spans())
    store.session("agent-a").read("docs/plan.md")
    early.read("docs/plan.md")
    assert len(exporter.get_finished_spans()) == before
    assert "session" not in store.__dict__


def test_export_of_a_store_includes_strategy_events(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    store = accord.open("memory://")
    s = store.session("agent-a")
    s.write("k", "v", expect=0)
    with s.lease("k", ttl=5) as lease:
        s.write("k", "w", lease=lease)
    count = export_history(store, tp)
    names = [span.name for span in exporter.get_finished_spans()]
    assert count == len(names)
    assert {"accord.write", "accord.lease_acquire", "accord.lease_release"} <= set(names)
    leased = [sp for sp in exporter.get_finished_spans() if sp.name == "accord.write"][-1]
    assert leased.attributes is not None and leased.attributes["accord.check"] == "lease"
    assert export_history(store, tp, since=store.revision()) == 0


# --- generated histories: the spans tell the checker what the history tells it -----------------

steps = st.lists(
    st.tuples(
        st.sampled_from(["agent-a", "agent-b", "agent-c"]),
        st.sampled_from(["k1", "k2"]),
        st.sampled_from(["read", "write", "force"]),
    ),
    min_size=1,
    max_size=14,
)


@given(program=steps)
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_histories_round_trip(program: list[tuple[str, str, str]],
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Agents read, then write against what they read (expect) or blindly (force)."""
    tmp = tmp_path_factory.mktemp("gen")
    store = accord.open("memory://", record_reads=True)
    seed = store.session("seed")
    for key in ("k1", "k2"):
        seed.write(key, f"{key}:0", expect=0)
    counter = 0
    known: dict[tuple[str, str], int] = {}
    for agent, key, action in program:
        s = store.session(agent)
        if action == "read" or (agent, key) not in known:
            known[(agent, key)] = s.read(key).version
            continue
        counter += 1
        value = f"{key}:{counter}"  # every written value is unique
        if action == "force":
            known[(agent, key)] = s.write(key, value, force=True).version
        else:
            try:
                known[(agent, key)] = s.write(key, value, expect=known[(agent, key)]).version
            except accord.Conflict:
                known.pop((agent, key))
    native = native_check(store, tmp)
    spans = tmp / "spans.jsonl"
    export_history(tmp / "native.jsonl", provider(spans))
    imported, _ = imported_check(spans)
    assert findings(imported) == findings(native)
    assert imported.lost_writes == native.lost_writes
    event(f"lost-update found: {bool(native.counts.get('lost-update'))}")


@pytest.mark.parametrize("module", ["accord.langgraph", "accord.agents_sdk", "accord.otel"])
def test_adapter_modules_list_their_public_names(module: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    # The order is ruff's (RUF022: constants, classes, functions, each sorted).
    assert len(set(mod.__all__)) == len(mod.__all__)
    assert all(hasattr(mod, name) for name in mod.__all__)
    public = {n for n, v in vars(mod).items() if not n.startswith("_")
              and getattr(v, "__module__", module) == module and callable(v)}
    assert public <= set(mod.__all__) | {"annotations"}


def test_import_accord_leaves_the_frameworks_unloaded() -> None:
    import subprocess
    import sys

    code = (
        "import sys, accord; "
        "print(sorted(m for m in ('langgraph', 'agents', 'opentelemetry') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_langgraph_fanout_traced_live_shows_the_lost_updates(tmp_path: Path) -> None:
    """LangGraph nodes on a last-write-wins AccordStore, traced: the spans name the losses."""
    import importlib.util
    import sys

    from accord.langgraph import AccordStore

    example = Path(__file__).parent.parent / "examples" / "langgraph_fanout.py"
    spec = importlib.util.spec_from_file_location("langgraph_fanout_otel", example)
    assert spec is not None and spec.loader is not None
    fanout = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = fanout
    spec.loader.exec_module(fanout)

    store = accord.open(f"sqlite:///{tmp_path / 's.db'}")
    spans = tmp_path / "spans.jsonl"
    inst = instrument(store, provider(spans))
    outcome = fanout.run(AccordStore(store, on_overwrite="last-write-wins"), safe=False,
                         history=tmp_path / "native.jsonl")
    inst.uninstrument()
    assert outcome.kept == 1 and outcome.check is not None
    imported, _ = imported_check(spans)
    assert findings(imported) == findings(outcome.check)
    assert imported.counts["lost-update"] == 2
    store.close()
