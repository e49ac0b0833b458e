"""The OpenTelemetry GenAI importer, on the worked example in examples/otel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import accord
from accord.cli import cli
from accord.history.otel import ImportReport, import_spans, load_mapping, parse_mapping

EXAMPLE = Path(__file__).parent.parent / "examples" / "otel"
SPANS = EXAMPLE / "spans.json"
MAPPING = EXAMPLE / "mapping.toml"


def test_worked_example_finds_the_lost_update() -> None:
    report = ImportReport()
    events = import_spans(SPANS, MAPPING, report)
    assert report.mapped == 5 and report.tool_calls == 6
    assert report.unmapped_tools == {"search_web": 1}
    assert [(e["agent"], e["op"]) for e in events] == [
        ("researcher", "read"),
        ("editor", "read"),
        ("researcher", "write"),
        ("editor", "write"),
        ("researcher", "read"),
    ]
    assert {e["key"] for e in events} == {"files/report.md"}
    result = accord.check(events)
    assert result.counts["lost-update"] == 1 and result.lost_writes == 1
    (a,) = result.anomalies
    assert a.agents == ("researcher", "editor")
    assert "editor built W2 on the initial value '# Report\\n'" in a.explanation
    assert "which editor read at" in a.explanation


def test_cli_check_otel(tmp_path: Path) -> None:
    saved = tmp_path / "history.jsonl"
    picture = tmp_path / "t.svg"
    result = CliRunner().invoke(
        cli,
        ["check", str(SPANS), "--otel", str(MAPPING), "--save-history", str(saved),
         "--timeline", str(picture)],
    )
    assert result.exit_code == 5, result.output
    assert "lost-update on files/report.md (researcher, editor)" in result.stdout
    assert "imported 5 of 6 tool calls from 11 spans; unmapped tools: search_web" in (
        result.stdout
    )
    assert len(saved.read_text().splitlines()) == 5
    assert accord.check(saved).counts["lost-update"] == 1
    assert picture.exists()


def otlp(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"spans": spans}]}]}


def tool_span(sid: str, agent: str, tool: str, start: float, args: Any, result: Any,
              **extra: Any) -> dict[str, Any]:
    base = 1_800_000_000_000_000_000
    attrs = [
        {"key": "gen_ai.agent.id", "value": {"stringValue": agent}},
        {"key": "gen_ai.tool.name", "value": {"stringValue": tool}},
        {"key": "gen_ai.tool.call.arguments", "value": {"stringValue": json.dumps(args)}},
        {"key": "gen_ai.tool.call.result", "value": {"stringValue": json.dumps(result)}},
    ]
    return {"traceId": "t", "spanId": sid, "name": f"execute_tool {tool}",
            "startTimeUnixNano": str(base + int(start * 1e9)),
            "endTimeUnixNano": str(base + int((start + 0.1) * 1e9)),
            "attributes": attrs, **extra}


MAP = {"tool": [
    {"name": "get", "op": "read", "key": "arguments.id", "value": "result"},
    {"name": ["put", "upsert"], "op": "write", "key": "arguments.id", "value": "arguments.doc"},
]}


def test_error_spans_are_not_committed_writes(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    lines = [
        otlp([tool_span("1", "a", "get", 0, {"id": "x"}, {"n": 1})]),
        otlp([tool_span("2", "b", "get", 1, {"id": "x"}, {"n": 1})]),
        otlp([tool_span("3", "a", "put", 2, {"id": "x", "doc": {"n": 2}}, "ok")]),
        otlp([tool_span("4", "b", "upsert", 3, {"id": "x", "doc": {"n": 3}}, "failed",
                        status={"code": 2})]),
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines))
    events = import_spans(path, parse_mapping(MAP))
    assert events[-1]["outcome"] == "error"
    assert accord.check(events).ok


def test_flat_sdk_spans_long_values_and_agents_from_parents(tmp_path: Path) -> None:
    big = "x" * 500
    spans = [
        {"name": "invoke_agent", "context": {"trace_id": "t", "span_id": "p"},
         "start_time": "2026-11-28T10:00:00Z", "end_time": "2026-11-28T10:00:09Z",
         "attributes": {"gen_ai.agent.name": "writer"}},
        {"name": "execute_tool put", "context": {"trace_id": "t", "span_id": "c"},
         "parent_id": "p", "start_time": "2026-11-28T10:00:01Z",
         "end_time": "2026-11-28T10:00:02Z",
         "attributes": {"gen_ai.tool.name": "put",
                        "gen_ai.tool.call.arguments": json.dumps({"id": "k", "doc": big})}},
        {"name": "execute_tool get", "context": {"trace_id": "t", "span_id": "d"},
         "parent_id": "p", "start_time": "2026-11-28T10:00:03Z",
         "end_time": "2026-11-28T10:00:04Z",
         "attributes": {"gen_ai.tool.name": "get",
                        "gen_ai.tool.call.arguments": json.dumps({"id": "k"}),
                        "gen_ai.tool.call.result": json.dumps(big)}},
    ]
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(spans))
    events = import_spans(path, parse_mapping(MAP))
    assert [e["agent"] for e in events] == ["writer", "writer"]
    assert events[0]["hash"] == events[1]["hash"] and "value" not in events[0]
    assert accord.check(events).ok


def test_missing_key_and_agent_are_reported(tmp_path: Path) -> None:
    spans = [tool_span("1", "a", "get", 0, {"other": 1}, 1)]
    spans.append(tool_span("2", "", "get", 1, {"id": "k"}, 1))
    path = tmp_path / "s.json"
    path.write_text(json.dumps(otlp(spans)))
    report = ImportReport()
    mapping = parse_mapping({**MAP, "agent": ["gen_ai.agent.id"]})
    assert import_spans(path, mapping, report) == []
    assert any("no key at arguments.id" in p for p in report.problems)
    assert any("no agent" in p for p in report.problems)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "at least one"),
        ({"tool": [{"op": "read", "key": "arguments.a", "value": "result"}]}, "needs name"),
        ({"tool": [{"name": "t", "op": "append", "key": "arguments.a", "value": "result"}]},
         "op must be"),
        ({"tool": [{"name": "t", "op": "read", "key": "path", "value": "result"}]},
         "key must be a path"),
        ({"tool": [{"name": "t", "op": "read", "key": "arguments.a"}]}, "exactly one of"),
    ],
)
def test_bad_mappings(data: dict[str, Any], message: str) -> None:
    with pytest.raises(accord.UsageError, match=message):
        parse_mapping(data)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(accord.UsageError, match="No mapping file"):
        load_mapping(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("tool = [")
    with pytest.raises(accord.UsageError, match="not valid TOML"):
        load_mapping(bad)
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(accord.HistoryFormatError, match="holds no spans"):
        import_spans(empty, parse_mapping(MAP))
    result = CliRunner().invoke(cli, ["check", "--otel", str(MAPPING)])
    assert result.exit_code == 1 and "--otel needs HISTORY" in result.stderr


def test_unreadable_span_is_a_clear_error(tmp_path: Path) -> None:
    bad = otlp([tool_span("1", "a", "get", 0, {"id": "x"}, 1)])
    bad["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] = "soon"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(accord.HistoryFormatError, match="cannot read"):
        import_spans(path, parse_mapping(MAP))
