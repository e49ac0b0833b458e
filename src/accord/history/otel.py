"""Import OpenTelemetry GenAI spans as a foreign history, through a mapping file.

Agent frameworks that follow the OpenTelemetry GenAI semantic conventions
record each tool call as a span (``gen_ai.operation.name = execute_tool``)
with ``gen_ai.tool.name``, the call's arguments
(``gen_ai.tool.call.arguments``) and result (``gen_ai.tool.call.result``),
and the agent as ``gen_ai.agent.id`` (or ``gen_ai.agent.name``) on the span
or on an ancestor ``invoke_agent`` span. Which tool calls read or write
which shared resource only the user knows, so a small TOML mapping file
says it::

    agent = ["gen_ai.agent.id", "gen_ai.agent.name"]   # optional; the default

    [[tool]]
    name = "read_file"            # gen_ai.tool.name (a string or a list)
    op = "read"
    key = "arguments.path"        # where the resource's name is
    value = "result.content"      # what the call read

    [[tool]]
    name = ["write_file", "save_file"]
    op = "write"
    key = "arguments.path"
    value = "arguments.content"   # what the call wrote
    prefix = "files/"             # optional: prepended to every key

A path is ``arguments.<field>...``, ``result.<field>...`` (``arguments`` and
``result`` alone mean the whole thing; JSON text is parsed first), or
``attributes.<span attribute name>``. ``value`` may be replaced by ``hash``
when the spans carry a content hash instead of the content.

:func:`import_spans` returns foreign history events (agent, op, key, value or
hash, start, end; plus ``span`` and ``trace`` ids), ready for
:func:`accord.check`. Reads the OTLP JSON of the collector's file exporter
(``resourceSpans``, one request per line or one document) and the flat span
dicts of the Python SDK's console exporter.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import HistoryFormatError, UsageError
from .format import parse_time

DEFAULT_AGENT_ATTRIBUTES = ("gen_ai.agent.id", "gen_ai.agent.name")
ARGUMENTS = "gen_ai.tool.call.arguments"
RESULT = "gen_ai.tool.call.result"
TOOL_NAME = "gen_ai.tool.name"
INLINE_VALUE_LIMIT = 200


@dataclass
class ToolRule:
    """How one tool's calls become history events."""

    names: tuple[str, ...]
    op: str
    key: str
    value: str | None = None
    hash: str | None = None
    prefix: str = ""


@dataclass
class Mapping:
    """A parsed mapping file (see the module docs)."""

    tools: list[ToolRule]
    agent: tuple[str, ...] = DEFAULT_AGENT_ATTRIBUTES
    arguments: str = ARGUMENTS
    result: str = RESULT

    def rule(self, tool: str) -> ToolRule | None:
        for rule in self.tools:
            if tool in rule.names:
                return rule
        return None


@dataclass
class ImportReport:
    """What the import did: spans seen, tool calls mapped, and why others were skipped."""

    spans: int = 0
    tool_calls: int = 0
    mapped: int = 0
    unmapped_tools: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def load_mapping(path: str | os.PathLike[str]) -> Mapping:
    """Read and validate a TOML mapping file; raises :class:`UsageError` naming the problem."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"No mapping file at {path}. Write one (see docs/checker.md).") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"The mapping file {path} is not valid TOML: {exc}.") from exc
    return parse_mapping(data, str(path))


def parse_mapping(data: dict[str, Any], where: str = "mapping") -> Mapping:
    """Build a :class:`Mapping` from parsed TOML/JSON data."""
    tools = data.get("tool")
    if not isinstance(tools, list) or not tools:
        raise UsageError(
            f"{where}: add at least one [[tool]] table naming a tool, its op (read or write), "
            "the key path and the value path."
        )
    rules = []
    for i, t in enumerate(tools, 1):
        if not isinstance(t, dict):
            raise UsageError(f"{where}: tool {i} must be a table.")
        names = t.get("name")
        if isinstance(names, str):
            names = [names]
        if not names or not all(isinstance(n, str) and n for n in names):
            raise UsageError(f"{where}: tool {i} needs name = \"tool\" or a list of names.")
        op = t.get("op")
        if op not in ("read", "write"):
            raise UsageError(f"{where}: tool {i} ({names[0]}): op must be \"read\" or \"write\".")
        key = t.get("key")
        if not isinstance(key, str) or not _valid_path(key):
            raise UsageError(
                f"{where}: tool {i} ({names[0]}): key must be a path such as "
                "\"arguments.path\", \"result.id\" or \"attributes.NAME\"."
            )
        value, hash_ = t.get("value"), t.get("hash")
        if (value is None) == (hash_ is None):
            raise UsageError(
                f"{where}: tool {i} ({names[0]}): give exactly one of value = \"PATH\" or "
                "hash = \"PATH\" (what the call read or wrote)."
            )
        for path in (value, hash_):
            if path is not None and (not isinstance(path, str) or not _valid_path(path)):
                raise UsageError(f"{where}: tool {i} ({names[0]}): {path!r} is not a path.")
        rules.append(
            ToolRule(tuple(names), op, key, value, hash_, str(t.get("prefix", "")))
        )
    agent = data.get("agent", list(DEFAULT_AGENT_ATTRIBUTES))
    if isinstance(agent, str):
        agent = [agent]
    return Mapping(
        tools=rules,
        agent=tuple(agent),
        arguments=str(data.get("arguments_attribute", ARGUMENTS)),
        result=str(data.get("result_attribute", RESULT)),
    )


def _valid_path(path: str) -> bool:
    head = path.split(".", 1)[0]
    return head in ("arguments", "result") or (head == "attributes" and "." in path)


# --- reading spans ----------------------------------------------------------


@dataclass
class Span:
    """The parts of a span the importer uses."""

    trace: str
    span: str
    parent: str | None
    name: str
    start: float
    end: float
    attributes: dict[str, Any]
    resource: dict[str, Any]
    error: bool


def _any_value(v: Any) -> Any:
    """Decode an OTLP AnyValue ({"stringValue": ...} and friends)."""
    if not isinstance(v, dict):
        return v
    for name in ("stringValue", "boolValue", "doubleValue"):
        if name in v:
            return v[name]
    if "intValue" in v:
        return int(v["intValue"])
    if "arrayValue" in v:
        return [_any_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return {kv["key"]: _any_value(kv.get("value")) for kv in v["kvlistValue"].get("values", [])}
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def _attrs(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return dict(raw)
    if isinstance(raw, list):
        return {a["key"]: _any_value(a.get("value")) for a in raw if isinstance(a, dict)}
    return {}


def _nanos(v: Any) -> float:
    return int(v) / 1e9


def _spans_of(doc: Any) -> Iterator[Span]:
    if isinstance(doc, list):
        for item in doc:
            yield from _spans_of(item)
        return
    if not isinstance(doc, dict):
        return
    if "resourceSpans" in doc:
        for rs in doc["resourceSpans"] or []:
            resource = _attrs((rs.get("resource") or {}).get("attributes"))
            for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
                for s in ss.get("spans") or []:
                    status = s.get("status") or {}
                    yield Span(
                        trace=str(s.get("traceId", "")),
                        span=str(s.get("spanId", "")),
                        parent=s.get("parentSpanId") or None,
                        name=str(s.get("name", "")),
                        start=_nanos(s.get("startTimeUnixNano", 0)),
                        end=_nanos(s.get("endTimeUnixNano", s.get("startTimeUnixNano", 0))),
                        attributes=_attrs(s.get("attributes")),
                        resource=resource,
                        error=status.get("code") in (2, "STATUS_CODE_ERROR", "ERROR"),
                    )
        return
    if "name" in doc and ("context" in doc or "start_time" in doc):
        ctx = doc.get("context") or {}
        status = doc.get("status") or {}
        start = parse_time(doc.get("start_time")) or 0.0
        yield Span(
            trace=str(ctx.get("trace_id", "")),
            span=str(ctx.get("span_id", "")),
            parent=doc.get("parent_id") or None,
            name=str(doc["name"]),
            start=start,
            end=parse_time(doc.get("end_time")) or start,
            attributes=_attrs(doc.get("attributes")),
            resource=_attrs((doc.get("resource") or {}).get("attributes")),
            error=str(status.get("status_code", "")).upper() == "ERROR",
        )


def read_spans(path: str | os.PathLike[str]) -> list[Span]:
    """Every span in an OTel JSON export (one document, or one JSON value a line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise HistoryFormatError(f"No span file at {path}.") from exc
    except UnicodeDecodeError as exc:
        raise HistoryFormatError(
            f"{path} is not UTF-8 text ({exc}). Export spans as OTLP JSON (the collector's "
            "file exporter) or one span per line."
        ) from exc
    try:
        docs: list[Any] = [json.loads(text)]
    except ValueError:
        docs = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line))
            except ValueError as exc:
                raise HistoryFormatError(
                    f"{path}, line {n}: not valid JSON ({exc}). Export spans as OTLP JSON "
                    "(the collector's file exporter) or one span per line."
                ) from exc
    try:
        spans = [s for doc in docs for s in _spans_of(doc)]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise HistoryFormatError(
            f"{path}: a span this importer cannot read ({type(exc).__name__}: {exc}). It "
            "reads OTLP JSON (resourceSpans, times in startTimeUnixNano) and the SDK's "
            "console-exporter span dicts."
        ) from exc
    if not spans:
        raise HistoryFormatError(
            f"{path} holds no spans. Export them as OTLP JSON (resourceSpans) or as the span "
            "dicts of the OpenTelemetry SDK's console exporter."
        )
    return spans


# --- mapping ------------------------------------------------------------------


def _parse_json_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _lookup(span: Span, path: str, mapping: Mapping) -> tuple[bool, Any]:
    head, _, rest = path.partition(".")
    if head == "attributes":
        return (rest in span.attributes, span.attributes.get(rest))
    attr = mapping.arguments if head == "arguments" else mapping.result
    if attr not in span.attributes:
        return False, None
    value = _parse_json_text(span.attributes[attr])
    for part in rest.split(".") if rest else []:
        if isinstance(value, str):
            value = _parse_json_text(value)
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def _agent(span: Span, by_id: dict[tuple[str, str], Span], names: Iterable[str]) -> str | None:
    names = tuple(names)
    current: Span | None = span
    seen = 0
    while current is not None and seen < 64:
        for name in names:
            if current.attributes.get(name):
                return str(current.attributes[name])
        current = by_id.get((current.trace, current.parent)) if current.parent else None
        seen += 1
    for name in names:
        if span.resource.get(name):
            return str(span.resource[name])
    return None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _content_hash(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def import_spans(
    spans: str | os.PathLike[str] | list[Span],
    mapping: Mapping | str | os.PathLike[str],
    report: ImportReport | None = None,
) -> list[dict[str, Any]]:
    """Turn tool-call spans into foreign history events, per ``mapping``.

    ``spans`` is a path to an OTel JSON export (or spans from
    :func:`read_spans`); ``mapping`` a :class:`Mapping` or the path of a TOML
    mapping file. Tool calls the mapping does not name are skipped (counted
    in ``report.unmapped_tools``); a mapped call whose key or value is
    missing is skipped with a line in ``report.problems``; a call whose span
    has an error status becomes an event with outcome ``error`` (not a
    committed write). Events come sorted by start time.
    """
    if not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    span_list = read_spans(spans) if not isinstance(spans, list) else spans
    report = report if report is not None else ImportReport()
    by_id = {(s.trace, s.span): s for s in span_list}
    events: list[dict[str, Any]] = []
    for s in sorted(span_list, key=lambda s: (s.start, s.end)):
        report.spans += 1
        tool = s.attributes.get(TOOL_NAME)
        if tool is None:
            continue
        report.tool_calls += 1
        rule = mapping.rule(str(tool))
        if rule is None:
            report.unmapped_tools[str(tool)] = report.unmapped_tools.get(str(tool), 0) + 1
            continue
        where = f"span {s.span or '?'} ({tool})"
        agent = _agent(s, by_id, mapping.agent)
        if agent is None:
            report.problems.append(
                f"{where}: no agent ({', '.join(mapping.agent)} on the span or its parents)."
            )
            continue
        found, key = _lookup(s, rule.key, mapping)
        if not found or key in (None, ""):
            report.problems.append(f"{where}: no key at {rule.key}.")
            continue
        event: dict[str, Any] = {
            "agent": agent,
            "op": rule.op,
            "key": rule.prefix + str(key),
            "start": _iso(s.start),
            "end": _iso(s.end),
        }
        if rule.hash is not None:
            found, h = _lookup(s, rule.hash, mapping)
            if not found and not s.error:
                report.problems.append(f"{where}: no hash at {rule.hash}.")
                continue
            event["hash"] = None if h is None else str(h)
        else:
            assert rule.value is not None
            found, value = _lookup(s, rule.value, mapping)
            if not found and not (s.error or rule.op == "read"):
                report.problems.append(f"{where}: no value at {rule.value}.")
                continue
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            if value is not None and len(text) > INLINE_VALUE_LIMIT:
                # Long contents are compared by hash: the history stays small,
                # and a read matches a write exactly when the content does.
                event["hash"] = _content_hash(value)
            else:
                event["value"] = value
        if s.error:
            event["outcome"] = "error"
        event["span"] = s.span
        event["trace"] = s.trace
        report.mapped += 1
        events.append(event)
    return events


def write_history(events: list[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write imported events as a JSONL foreign history."""
    with Path(path).open("w", encoding="utf-8") as out:
        for e in events:
            out.write(json.dumps(e) + "\n")
