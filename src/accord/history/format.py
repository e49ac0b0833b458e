"""Reading histories: JSONL lines in, plain dicts out, with errors that name the line.

Two shapes of history are accepted (docs/checker.md describes both):

* **accord histories**, as ``accord export`` writes them: every event has a
  ``rev`` (the store revision, strictly increasing), ``agent``, ``op`` and,
  for key operations, ``key``, ``version``, ``prev``, ``based_on`` and so on;
* **foreign histories** without versions: ``agent``, ``op`` (read, write,
  cas or append), ``key``, ``value`` or ``hash``, and ``start``/``end``
  times that bound the operation in real time (their meaning is in
  :mod:`accord.history.foreign`).

The reader streams: it holds one line at a time, so a history of any length
can be checked in bounded memory. With ``lenient=True`` malformed lines are
skipped and counted instead of stopping the check.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import HistoryFormatError, call, option

try:  # orjson parses a line three times faster; the stdlib is the fallback.
    import orjson

    _loads: Any = orjson.loads
    _JSONError: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - depends on the environment
    import json

    _loads = json.loads
    _JSONError = (ValueError,)

NATIVE_OPS = frozenset(
    {
        "read",
        "write",
        "delete",
        "lease_acquire",
        "lease_renew",
        "lease_release",
        "lease_expire",
        "submit",
        "accept",
        "reject",
        "fork",
        "merge",
    }
)
"""Operations an accord history may contain (unknown ones are an error)."""

Source = str | os.PathLike[str] | Iterable[Any]


class EventStream:
    """Iterate ``(line, event_dict)`` over a history source.

    ``source`` is a path to a JSONL file, an iterable of dicts or
    :class:`accord.Event` objects, or a :class:`accord.Store` (its whole
    history). Malformed lines raise :class:`HistoryFormatError` naming the
    line, unless ``lenient`` is set: then they are skipped, counted in
    ``skipped`` and described (the first few) in ``problems``.
    """

    def __init__(self, source: Any, *, lenient: bool = False) -> None:
        self.source = source
        self.lenient = lenient
        self.skipped = 0
        self.problems: list[str] = []
        self.name = _describe(source)

    def fail(self, line: int, why: str) -> None:
        """Report a bad line: raise, or in lenient mode count it."""
        if not self.lenient:
            raise HistoryFormatError(
                f"{self.name}, line {line}: {why} Fix the line, or pass {option('lenient')} "
                "to skip malformed lines and count them.",
                line=line,
            )
        self.skipped += 1
        if len(self.problems) < 20:
            self.problems.append(f"line {line}: {why}")

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        source = self.source
        if isinstance(source, (str, os.PathLike)):
            return self._lines(Path(source))
        return self._items(source)

    def _items(self, source: Any) -> Iterator[tuple[int, dict[str, Any]]]:
        history = getattr(source, "history", None)
        if callable(history) and hasattr(source, "backend"):
            source = source.backend.history()
        for n, item in enumerate(source, 1):
            if isinstance(item, dict):
                yield n, item
            elif hasattr(item, "to_dict"):
                yield n, item.to_dict()
            else:
                self.fail(n, f"expected a dict or an accord Event, got {type(item).__name__}.")

    def _lines(self, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise HistoryFormatError(
                f"No history file at {path}. Write one with "
                f"{call('store.export_history', str(path))}.",
            ) from exc
        except OSError as exc:
            raise HistoryFormatError(f"Cannot read the history file {path}: {exc}.") from exc
        with handle:
            loads = _loads
            for n, raw in enumerate(handle, 1):
                try:
                    data = loads(raw)
                except _JSONError as exc:
                    if raw.strip():  # blank lines are allowed
                        self.fail(n, f"not valid JSON ({_short(exc)}).")
                    continue
                if type(data) is not dict:
                    self.fail(n, f"expected a JSON object, got {type(data).__name__}.")
                    continue
                yield n, data


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if hasattr(source, "url"):
        return f"history of {source.url}"
    return "history"


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch from an RFC 3339 string or a number; None if absent.

    Raises ValueError for text that is not a time.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    try:
        if isinstance(value, (int, float)):
            seconds = float(value)
            if seconds != seconds or abs(seconds) > 1e11:
                raise ValueError(f"{value!r} is not a time")
            return seconds
        if isinstance(value, str):
            text = value.strip()
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                from datetime import UTC

                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
    except (OverflowError, TypeError) as exc:
        raise ValueError(f"{value!r} is not a time") from exc
    raise ValueError(f"{value!r} is not a time")


def format_time(seconds: float | None) -> str:
    """A short UTC clock time for explanations (``19:00:00.123``)."""
    if seconds is None:
        return "?"
    from datetime import UTC

    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S.%f")


def clock_time(stamp: str | None) -> str:
    """The clock part of an accord event time (``19:00:00.123``)."""
    if not stamp:
        return "?"
    return stamp[11:].rstrip("Zz")[:15] if len(stamp) > 11 and stamp[10] == "T" else stamp


def is_foreign(event: dict[str, Any]) -> bool:
    """True when an event is in the foreign (version-less) shape."""
    return "rev" not in event and any(
        name in event for name in ("start", "end", "value", "hash")
    )
