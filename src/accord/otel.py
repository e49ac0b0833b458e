"""accord operations as OpenTelemetry spans that ``accord check --otel`` reads back.

Two ways to get the spans, both shaped as the GenAI tool-call spans that
:mod:`accord.history.otel` imports (``gen_ai.tool.name``, ``gen_ai.agent.id``,
``gen_ai.tool.call.arguments`` / ``.result`` as JSON text), plus ``accord.*``
attributes for people and other tools:

* :func:`instrument` traces a store live: every ``read``, ``write`` and
  ``delete`` of its sessions (``update`` included: one span per read and
  write) becomes a span in the current trace, as a child of whatever span
  the agent framework has open;
* :func:`export_history` turns a recorded history (a Store, a JSONL export,
  or events) into spans, with the store clock's times: every operation,
  leases, queue decisions and merges included.

Then ``accord check spans.json --otel accord-mapping.toml`` (the mapping is
:data:`MAPPING_TOML`, written by :func:`write_mapping`) finds the same lost
updates in the traces as in the store's own history. Spans never carry
values, only their content hashes (``sha256:...``, as the history does).

Span shape (one span per operation)::

    name                     accord.write
    gen_ai.operation.name    execute_tool
    gen_ai.tool.name         accord.write   (accord.read, accord.delete, accord.lease_acquire...)
    gen_ai.agent.id          agent-a
    gen_ai.tool.call.arguments  {"key": "docs/plan.md", "hash": "sha256:...", "expect": 3}
    gen_ai.tool.call.result     {"version": 4, "revision": 17}
    accord.key, accord.op, accord.version, accord.based_on, accord.check, accord.outcome, ...
    status                   ERROR when the operation was refused (conflict, fenced, ...)

Needs the ``otel`` extra (``pip install 'accord[otel]'``).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.trace import Status, StatusCode, Tracer, TracerProvider
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "accord.otel needs OpenTelemetry: pip install 'accord[otel]'."
    ) from exc

from .errors import AccordError, LeaseError, NotFound, PreconditionFailed
from .history.otel import Mapping, parse_mapping
from .records import Doc, encode_value, value_hash
from .session import Session
from .store import Store

__all__ = [
    "MAPPING_TOML",
    "Instrumentation",
    "JsonLinesSpanExporter",
    "export_history",
    "instrument",
    "mapping",
    "write_mapping",
]

SCOPE = "accord"

MAPPING_TOML = """\
# How `accord check --otel` reads the spans of accord.otel (instrument or export_history).
agent = ["gen_ai.agent.id"]

[[tool]]
name = "accord.read"
op = "read"
key = "arguments.key"
hash = "result.hash"            # null when the key was absent

[[tool]]
name = ["accord.write", "accord.delete", "accord.accept", "accord.merge"]
op = "write"
key = "arguments.key"
hash = "arguments.hash"         # null for a delete: the key became absent
"""
"""The mapping file for accord's own spans (``accord check SPANS --otel FILE``)."""

_KEYED_WRITES = ("write", "delete", "accept", "merge")
_ACCORD_FIELDS = (
    "key", "op", "version", "prev", "based_on", "check", "outcome", "rev", "lamport", "lease",
    "idem", "request",
)


def mapping() -> Mapping:
    """:data:`MAPPING_TOML`, parsed: pass it to :func:`accord.history.otel.import_spans`."""
    return parse_mapping(tomllib.loads(MAPPING_TOML), "accord.otel.MAPPING_TOML")


def write_mapping(path: str | os.PathLike[str]) -> Path:
    """Write :data:`MAPPING_TOML` to ``path`` (for ``accord check --otel PATH``)."""
    target = Path(path)
    target.write_text(MAPPING_TOML, encoding="utf-8")
    return target


def _tracer(tracer_provider: TracerProvider | None) -> Tracer:
    from . import __version__

    return trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _attributes(event: dict[str, Any]) -> dict[str, Any]:
    """The span attributes of one history event (an accord operation)."""
    op = str(event.get("op"))
    key = event.get("key")
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": f"accord.{op}",
        "gen_ai.agent.id": str(event.get("agent", "")),
    }
    arguments: dict[str, Any] = {"key": key}
    result: dict[str, Any] = {"version": event.get("version")}
    if op in _KEYED_WRITES:
        arguments["hash"] = None if op == "delete" else event.get("hash")
        if event.get("expected") is not None:
            arguments["expect"] = event["expected"]
        result["revision"] = event.get("rev")
    elif op == "read":
        result["hash"] = event.get("hash") if event.get("version") else None
    attrs["gen_ai.tool.call.arguments"] = _json(arguments)
    attrs["gen_ai.tool.call.result"] = _json(result)
    for name in _ACCORD_FIELDS:
        value = event.get(name)
        if value is not None:
            attrs[f"accord.{'revision' if name == 'rev' else name}"] = value
    if event.get("hash") is not None:
        attrs["accord.hash"] = str(event["hash"])
    return attrs


def _ns(iso: str) -> int:
    # Exact to the microsecond, as the history's times are (a float of epoch
    # seconds would round them).
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _events(history: Store | str | os.PathLike[str] | Iterable[Any]) -> Iterator[dict[str, Any]]:
    from .history.format import EventStream

    for _, event in EventStream(history):
        yield event


def export_history(
    history: Store | str | os.PathLike[str] | Iterable[Any],
    tracer_provider: TracerProvider | None = None,
    *,
    since: int = 0,
) -> int:
    """Emit one span per event of an accord history; returns the number of spans.

    ``history`` is a :class:`accord.Store`, the path of an ``accord export``
    file, or events (dicts or :class:`accord.Event`). Spans start at the
    event's ``start`` (recorded reads) or ``time`` and end at its ``time``,
    on the store's clock. Only events with ``rev > since`` are exported.
    Reads are in a history only when the store records them
    (``accord.open(..., record_reads=True)``); without them ``accord check``
    still finds lost updates in the history itself, but not in the spans.
    """
    tracer = _tracer(tracer_provider)
    count = 0
    for event in _events(history):
        if not isinstance(event.get("rev"), int) or event["rev"] <= since:
            continue
        time = event.get("time")
        if not isinstance(time, str):
            continue
        end = _ns(time)
        start = _ns(event["start"]) if isinstance(event.get("start"), str) else end
        span = tracer.start_span(
            f"accord.{event.get('op')}",
            attributes=_attributes(event),
            start_time=min(start, end),
        )
        if event.get("outcome", "ok") != "ok":
            span.set_status(Status(StatusCode.ERROR, f"accord outcome: {event.get('outcome')}"))
        span.end(end_time=end)
        count += 1
    return count


class JsonLinesSpanExporter(SpanExporter):
    """A span exporter that appends one JSON span per line to a file.

    The lines are the SDK's span dicts (``ReadableSpan.to_json``), which
    ``accord check FILE --otel MAPPING`` reads. For teams without a collector;
    with one, its file exporter's OTLP JSON works as well.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(span.to_json(indent=None) + "\n" for span in spans)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


# --- live instrumentation ---------------------------------------------------------------------


class Instrumentation:
    """What :func:`instrument` installed; :meth:`uninstrument` takes it away."""

    def __init__(self, store: Store, tracer: Tracer) -> None:
        self.store = store
        self.tracer = tracer
        self._sessions: list[Session] = []
        self._lock = threading.Lock()

    def _trace(self, session: Session) -> Session:
        with self._lock:
            if getattr(session, "_accord_otel", None) is self:
                return session
            session._accord_otel = self  # type: ignore[attr-defined]
            self._sessions.append(session)
        read, write, delete = session.read, session.write, session.delete
        session.read = self._traced_read(session, read)  # type: ignore[method-assign,assignment]
        session.write = self._traced_write(session, write, "write")  # type: ignore[method-assign]
        session.delete = self._traced_write(session, delete, "delete")  # type: ignore[method-assign]
        return session

    def _span_attributes(self, session: Session, op: str, key: str) -> dict[str, Any]:
        return {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": f"accord.{op}",
            "gen_ai.agent.id": session.agent,
            "accord.op": op,
            "accord.key": key,
        }

    def _traced_read(self, session: Session, read: Callable[[str], Doc]) -> Callable[[str], Doc]:
        def traced(key: str) -> Doc:
            with self.tracer.start_as_current_span(
                "accord.read",
                attributes=self._span_attributes(session, "read", key),
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                span.set_attribute("gen_ai.tool.call.arguments", _json({"key": key}))
                try:
                    doc = read(key)
                except NotFound:
                    # Absent is an answer, not a failure: the importer reads
                    # it as a read of "no value".
                    span.set_attribute(
                        "gen_ai.tool.call.result", _json({"version": 0, "hash": None})
                    )
                    span.set_attribute("accord.outcome", "absent")
                    raise
                except BaseException as exc:
                    _failed(span, exc)
                    raise
                digest = value_hash(encode_value(doc.value)[1])
                span.set_attribute(
                    "gen_ai.tool.call.result", _json({"version": doc.version, "hash": digest})
                )
                span.set_attribute("accord.version", doc.version)
                span.set_attribute("accord.hash", digest)
                span.set_attribute("accord.outcome", "ok")
                return doc

        return traced

    def _traced_write(
        self, session: Session, call: Callable[..., Any], op: str
    ) -> Callable[..., Any]:
        def traced(key: str, *args: Any, **kwargs: Any) -> Any:
            value = args[0] if op == "write" and args else kwargs.get("value")
            arguments: dict[str, Any] = {"key": key, "hash": None}
            if op == "write":
                # A value accord refuses fails in the call below, with its own error.
                with contextlib.suppress(AccordError):
                    arguments["hash"] = value_hash(encode_value(value)[1])
            if kwargs.get("expect") is not None:
                arguments["expect"] = kwargs["expect"]
            with self.tracer.start_as_current_span(
                f"accord.{op}",
                attributes=self._span_attributes(session, op, key),
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                span.set_attribute("gen_ai.tool.call.arguments", _json(arguments))
                if arguments["hash"] is not None:
                    span.set_attribute("accord.hash", arguments["hash"])
                try:
                    result = call(key, *args, **kwargs)
                except BaseException as exc:
                    _failed(span, exc)
                    raise
                version = result.version if isinstance(result, Doc) else result
                revision = result.revision if isinstance(result, Doc) else None
                span.set_attribute(
                    "gen_ai.tool.call.result", _json({"version": version, "revision": revision})
                )
                span.set_attribute("accord.version", version)
                span.set_attribute("accord.outcome", "ok")
                return result

        return traced

    def uninstrument(self) -> None:
        """Stop tracing: the store and its sessions behave as before."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            for name in ("read", "write", "delete", "_accord_otel"):
                session.__dict__.pop(name, None)
        self.store.__dict__.pop("session", None)


def _failed(span: Any, exc: BaseException) -> None:
    # The history's outcome names: a refused precondition is a conflict, a
    # refused lease a fenced write, anything else an error.
    span.record_exception(exc)
    if isinstance(exc, PreconditionFailed):
        outcome = "conflict"
    elif isinstance(exc, LeaseError):
        outcome = "fenced"
    else:
        outcome = "error"
    span.set_attribute("accord.outcome", outcome)
    span.set_attribute("accord.error", type(exc).__name__)
    span.set_status(Status(StatusCode.ERROR, str(exc).splitlines()[0][:200]))


def instrument(store: Store, tracer_provider: TracerProvider | None = None) -> Instrumentation:
    """Trace every read, write and delete of ``store``'s sessions as a span.

    ``tracer_provider`` defaults to the global one (``opentelemetry.trace``).
    Sessions taken from ``store.session()`` before or after this call are
    traced. Spans are children of the span current in the calling thread.
    Operations made by accord's strategies inside the store (a queue's
    accept, a merge's commit) are not live spans; :func:`export_history`
    has them. Call :meth:`Instrumentation.uninstrument` to stop.
    """
    inst = Instrumentation(store, _tracer(tracer_provider))
    original = store.session

    def session(agent: str) -> Session:
        return inst._trace(original(agent))

    store.session = session  # type: ignore[method-assign]
    for existing in list(getattr(store, "_sessions", {}).values()):
        inst._trace(existing)
    return inst
