"""Plain data: what the store keeps and what the API hands out.

Nothing here talks to a backend. ``Record`` is the backend's row,
``Doc`` is what a session returns to an agent, ``Event`` is one line of
history, and ``Compare``/``Put``/``Delete``/``Append`` are the words of the
one atomic primitive, ``Backend.txn``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import InvalidValue

Kind = Literal["text", "json", "bytes"]
Value = Any  # str | bytes | JSON data


MAX_JSON_DEPTH = 256
"""How deeply JSON data may nest (containers inside containers): ``[]`` is
depth 1, ``{"a": [1]}`` depth 2. Deeper data is refused with
:class:`accord.InvalidValue`: the standard library's JSON encoder and decoder
recurse once per level, and a limit well under Python's recursion limit
keeps them from failing with ``RecursionError`` however deep the caller's
own stack is."""

_SCALARS = frozenset({str, int, float, bool, type(None)})


def encode_value(value: Value) -> tuple[Kind, bytes]:
    """Encode a value for storage, keeping its type.

    ``str`` is text, ``bytes`` (or ``bytearray``, ``memoryview``) is bytes,
    and dict, list, int, float, bool or None are JSON. A value is taken
    only if it reads back equal to what was given, so nothing changes
    silently: anything else raises :class:`accord.InvalidValue`, naming the
    JSON path of the first part that JSON cannot hold exactly (a dict key
    that is not a string, a tuple, NaN or an infinity, a lone surrogate in
    a string, a type JSON does not have, nesting deeper than
    :data:`MAX_JSON_DEPTH`).
    """
    if isinstance(value, str):
        try:
            return "text", value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _invalid_text(value, exc, "The text value") from None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes", bytes(value)
    if value is None or isinstance(value, (dict, list, int, float, bool)):
        if not _flat(value) and not _plain_tree(value):
            _check_json(value)
        try:
            text = _dumps_value(value)
        except (TypeError, ValueError, RecursionError) as exc:
            _check_json(value, finite=True)
            raise _invalid(
                "$", f"it cannot be written as JSON ({exc})", "store JSON data only"
            ) from exc
        # Characters outside the BMP are escaped as a surrogate pair, and so
        # is a str that holds surrogate code points, which UTF-8 cannot hold
        # and which would read back changed; only the UTF-8 encoder tells
        # them apart. Most values have neither, and skip it.
        if "\\ud" in text:
            try:
                _dumps_value_utf8(value).encode("utf-8")
            except UnicodeEncodeError:
                _check_json(value, strings=True)
        return "json", text.encode("ascii")
    if isinstance(value, tuple):
        _check_json(value)
    raise InvalidValue(
        f"Cannot store a value of type {type(value).__name__}. Store text (str), bytes, "
        "or JSON data (dict, list, str, int, float, bool, None); convert the value first.",
        path="$",
    )


def _flat(value: Any) -> bool:
    """True for a scalar, or a dict or list of scalars with str keys: the
    common shapes, checked without a walk (exact types only)."""
    # Explicit loops: all() over a generator costs about twice as much here.
    cls = type(value)
    if cls is dict:
        scalars = _SCALARS
        for k, v in value.items():  # noqa: SIM110
            if type(k) is not str or type(v) not in scalars:
                return False
        return True
    if cls is list:
        scalars = _SCALARS
        for v in value:  # noqa: SIM110
            if type(v) not in scalars:
                return False
        return True
    return cls in _SCALARS


def _plain_tree(value: Any) -> bool:
    """True when ``value`` is nested dicts and lists of scalars with str keys
    (exact types), no deeper than :data:`MAX_JSON_DEPTH`: what nearly every
    value is. Anything else goes to :func:`_check_json` for a verdict and a
    path. This walk goes level by level and builds no paths, so it stays
    cheap (about half of what encoding the value costs)."""
    scalars = _SCALARS
    level = [value]
    depth = 1
    while level:
        if depth > MAX_JSON_DEPTH:
            return False
        deeper = []
        for node in level:
            cls = type(node)
            if cls is dict:
                for k in node:
                    if type(k) is not str:
                        return False
                items = node.values()
            elif cls is list:
                items = node
            else:
                return False
            for v in items:
                t = type(v)
                if t not in scalars:
                    if t is dict or t is list:
                        deeper.append(v)
                    else:
                        return False
        level = deeper
        depth += 1
    return True


def _check_json(value: Any, *, finite: bool = False, strings: bool = False) -> None:
    """Walk JSON data (without recursion) and raise :class:`InvalidValue` at
    the first part JSON cannot hold exactly. ``finite`` also refuses NaN and
    infinities, ``strings`` lone surrogates (both also found by encoding)."""
    stack: list[tuple[Any, str, int]] = [(value, "$", 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            if strings:
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise _invalid_text(node, exc, f"The string at {_short(path)}", path) from None
            continue
        if node is None or isinstance(node, (bool, int)):
            continue
        if isinstance(node, float):
            if finite and not math.isfinite(node):
                raise _invalid(
                    path,
                    f"it is {node!r}, which JSON cannot hold",
                    "store a finite number, or null, or a string such as 'NaN'",
                )
            continue
        if isinstance(node, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise _invalid(
                    path,
                    f"the data nests deeper than {MAX_JSON_DEPTH} levels",
                    f"flatten it to at most {MAX_JSON_DEPTH} levels of nested lists and dicts",
                )
            if isinstance(node, dict):
                for k, v in node.items():
                    if not isinstance(k, str):
                        would = (
                            f" (it would read back as the key {json.dumps(json.dumps(k))})"
                            if k is None or isinstance(k, (bool, int, float))
                            else ""
                        )
                        raise _invalid(
                            f"{path}[{k!r}]",
                            f"a key is {type(k).__name__} {k!r}, but JSON keys are strings"
                            + would,
                            "use string keys, such as str(key)",
                        )
                    if strings:
                        try:
                            k.encode("utf-8")
                        except UnicodeEncodeError as exc:
                            raise _invalid_text(k, exc, f"A key of {_short(path)}", path) from None
                    stack.append((v, _child(path, k), depth + 1))
            else:
                for i in range(len(node) - 1, -1, -1):
                    stack.append((node[i], f"{path}[{i}]", depth + 1))
            continue
        if isinstance(node, tuple):
            raise _invalid(
                path,
                "it is a tuple, which JSON holds as a list (it would read back as a list)",
                "convert it with list(...)",
            )
        raise _invalid(
            path,
            f"it is of type {type(node).__name__}, which JSON does not have",
            "convert it to dict, list, str, int, float, bool or None",
        )


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _child(path: str, key: str) -> str:
    if _IDENT.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _invalid(path: str, problem: str, fix: str) -> InvalidValue:
    return InvalidValue(
        f"Cannot store this JSON value: at {_short(path)}, {problem}; nothing was written. "
        f"{fix[0].upper()}{fix[1:]}, then write again. A JSON value reads back exactly as "
        "written, so accord refuses what would change on the way.",
        path=path,
    )


def _short(path: str) -> str:
    return path if len(path) <= 80 else f"{path[:40]}...{path[-36:]}"


def _invalid_text(
    text: str, exc: UnicodeEncodeError, what: str, path: str | None = None
) -> InvalidValue:
    details: dict[str, Any] = {} if path is None else {"path": path}
    return InvalidValue(
        f"{what} holds a lone surrogate ({text[exc.start]!r} at character {exc.start}), "
        "which is not Unicode text and cannot be stored as UTF-8; nothing was written. "
        "Fix the text (a surrogate usually comes from decoding bytes with "
        "errors='surrogateescape'): store bytes instead, or replace the character.",
        **details,
    )


def decode_value(kind: str, data: bytes) -> Value:
    """Inverse of :func:`encode_value`."""
    if kind == "text":
        return data.decode("utf-8")
    if kind == "json":
        try:
            return json.loads(data)
        except RecursionError as exc:
            raise InvalidValue(
                f"A stored JSON value nests too deeply to decode here (accord writes at most "
                f"{MAX_JSON_DEPTH} levels; this one was written by something else). Read it "
                "with a JSON parser that allows deeper nesting, or rewrite it flatter.",
            ) from exc
    return bytes(data)


def to_wire(value: Value) -> tuple[Kind, Any]:
    """A value as JSON output carries it: ``(kind, wire)``.

    Text and JSON data go as they are; bytes go as standard base64 text, and
    the kind (``"bytes"``) says so, so every byte round-trips through JSON.
    Every JSON surface (the CLI's ``--json``, MCP, HTTP) uses this one form:
    ``{"kind": kind, "value": wire}``. :func:`from_wire` is its inverse.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes", base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, str):
        return "text", value
    return "json", value


def from_wire(kind: str, wire: Any) -> Value:
    """The value that :func:`to_wire` turned into ``(kind, wire)``.

    Raises :class:`accord.InvalidValue` when ``kind`` is unknown or bytes are
    not valid base64.
    """
    if kind == "bytes":
        if not isinstance(wire, str):
            raise InvalidValue(f"A bytes value travels as base64 text, not {type(wire).__name__}.")
        try:
            return base64.b64decode(wire.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError) as exc:
            raise InvalidValue(
                f"A bytes value must be standard base64 text ({exc}); encode the bytes with "
                "base64 first."
            ) from exc
    if kind == "text":
        if not isinstance(wire, str):
            raise InvalidValue(f"A text value must be a string, not {type(wire).__name__}.")
        return wire
    if kind == "json":
        return wire
    raise InvalidValue(f"Unknown value kind {kind!r}: use 'text', 'json' or 'bytes'.")


def compact_json_encoder(
    *, sort_keys: bool = False, allow_nan: bool = True, ensure_ascii: bool = True
) -> Callable[[Any], str]:
    """A reusable ``json.dumps(obj, separators=(",", ":"), sort_keys=...)``.

    ``json.dumps`` builds a new C encoder on every call, which costs several
    times what encoding a small event or clock does; this one is built once.
    No circular check: callers encode plain data (events, vector clocks).
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C encoder
        return json.JSONEncoder(
            sort_keys=sort_keys, separators=(",", ":"), allow_nan=allow_nan,
            ensure_ascii=ensure_ascii,
        ).encode
    encode = make(
        None,
        json.JSONEncoder().default,
        json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring,
        None,
        ":",
        ",",
        sort_keys,
        False,
        allow_nan,
    )

    def dumps(obj: Any) -> str:
        return "".join(encode(obj, 0))

    return dumps


_dumps_value = compact_json_encoder(sort_keys=True, allow_nan=False)
"""The canonical form of a JSON value: sorted keys, no spaces, ASCII."""
_dumps_value_utf8 = compact_json_encoder(sort_keys=True, allow_nan=False, ensure_ascii=False)


def fast_event_encoder() -> Callable[[dict[str, Any]], str]:
    """The encoder of the events on the backends' short write paths: orjson
    when installed (the ``fast`` extra), else :func:`compact_json_encoder`.

    Those events hold only str, int, None and a dict of str to int, for
    which orjson writes the same JSON as the stdlib (non-ASCII characters
    unescaped, which decodes the same), several times faster. Anything it
    refuses goes to the stdlib encoder.
    """
    fallback = compact_json_encoder()
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson comes with the 'fast' extra
        return fallback
    fast = orjson.dumps

    def dumps(event: dict[str, Any]) -> str:
        try:
            return fast(event).decode()
        except TypeError:  # pragma: no cover - orjson.JSONEncodeError is a TypeError
            return fallback(event)

    return dumps


def value_hash(data: bytes) -> str:
    """The content hash recorded in history events."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Record:
    """One key as a backend stores it.

    ``version`` counts writes to the key and is never reused: a delete
    leaves a tombstone (``deleted=True``) that keeps the version, so a
    re-create continues from it. ``revision`` is the store revision of the
    last change. ``expires`` is an optional deadline on the store's clock
    (used by leases and other records with a TTL). ``clock`` is the vector
    clock of the writer as JSON text, ``lamport`` its Lamport time.
    """

    key: str
    kind: str
    data: bytes
    version: int
    revision: int
    author: str = ""
    lamport: int = 0
    clock: str = "{}"
    deleted: bool = False
    expires: float | None = None

    @property
    def value(self) -> Value:
        return decode_value(self.kind, self.data)

    @property
    def live(self) -> bool:
        return not self.deleted


@dataclass(frozen=True, slots=True)
class Doc:
    """A version of a key as an agent sees it.

    ``value`` is str, bytes or JSON data, as written. ``version`` is the
    key's version, ``revision`` the store revision of the write, ``author``
    the agent that wrote it.
    """

    key: str
    value: Value
    version: int
    revision: int
    author: str
    kind: str = "text"
    lamport: int = 0
    clock: dict[str, int] = field(default_factory=dict)


def _doc_maker() -> Callable[[str, Value, int, int, str, str, int, dict[str, int]], Doc]:
    # The frozen dataclass's __init__ sets each field through
    # object.__setattr__, about a microsecond and a half per Doc; setting the
    # slots through their descriptors directly costs half as much, which is
    # a tenth of a read on SQLite.
    new = object.__new__
    k, v, ve, r, a, ki, la, c = (
        getattr(Doc, name).__set__
        for name in ("key", "value", "version", "revision", "author", "kind", "lamport", "clock")
    )

    def make_doc(
        key: str,
        value: Value,
        version: int,
        revision: int,
        author: str,
        kind: str,
        lamport: int,
        clock: dict[str, int],
    ) -> Doc:
        doc: Doc = new(Doc)
        k(doc, key)
        v(doc, value)
        ve(doc, version)
        r(doc, revision)
        a(doc, author)
        ki(doc, kind)
        la(doc, lamport)
        c(doc, clock)
        return doc

    return make_doc


make_doc = _doc_maker()
"""``Doc(key, value, version, revision, author, kind, lamport, clock)`` with
every field given, for the hot paths (the same object, made faster)."""


# --- the words of the atomic primitive -------------------------------------

NOW = "$now"
"""A compare value that the backend replaces with its own clock, inside the
transaction, so TTL checks never depend on an agent's clock."""


@dataclass(frozen=True, slots=True)
class Compare:
    """One condition of a transaction.

    ``target`` is ``"version"`` (0 when absent or deleted), ``"expires"``
    (None compares as +infinity: no deadline; absent as -infinity),
    ``"value"`` (the decoded value; absent is None), ``"holder"``: true
    when the record is absent, deleted or expired, or its ``author`` equals
    ``value`` (a role or lock that is free or held by this agent; ``op`` is
    ignored), or ``"vacant"``: ``key`` is a prefix, and the compare is true
    unless a live record (not deleted, not expired at commit) exists whose
    key is the prefix followed by one segment of ASCII digits, other than
    the record named by ``value`` (None: no exception; ``op`` is ignored).
    A vacant compare reads no record of its own: it is a range probe, and
    the prefix is not one of the transaction's keys. ``op`` is one of
    ``== != < <= > >=``. ``value`` may be :data:`NOW` to mean the backend's
    clock at commit.

    ``refusal``: when this compare is the first of a transaction to fail,
    the events appended by the failure branch carry this ``outcome`` instead
    of their own (so a refusal is recorded as what refused it).
    """

    key: str
    target: Literal["version", "expires", "value", "holder", "vacant"]
    op: Literal["==", "!=", "<", "<=", ">", ">="]
    value: Any
    refusal: str | None = None


@dataclass(frozen=True, slots=True)
class Put:
    """Write ``data`` to ``key``; the backend sets version = previous + 1.

    ``ttl`` (seconds on the store's clock) sets ``expires``. If ``event`` is
    given, the backend appends it with ``rev``, ``time``, ``version``,
    ``prev`` and ``hash`` filled in.
    """

    key: str
    kind: str
    data: bytes
    author: str = ""
    lamport: int = 0
    clock: str = "{}"
    ttl: float | None = None
    event: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete ``key``: its version moves on by one and a tombstone keeps it.

    Deleting an absent key is a no-op (no version change) unless ``event``
    is given, in which case the event is still appended. ``purge`` removes
    the row entirely (internal records only: it resets the version).
    """

    key: str
    author: str = ""
    lamport: int = 0
    clock: str = "{}"
    event: dict[str, Any] | None = None
    purge: bool = False


@dataclass(frozen=True, slots=True)
class Append:
    """Append a history event that changes no key."""

    event: dict[str, Any]


Op = Put | Delete | Append


@dataclass(frozen=True, slots=True)
class TxnResult:
    """What ``Backend.txn`` returns.

    ``succeeded`` tells which branch ran. ``records`` maps every key that
    was compared or written to its record after the transaction (None when
    there is no row). ``revision`` is the store revision after it; ``events``
    are the events appended, with their fields filled in. ``failed`` is the
    first compare that did not hold when ``succeeded`` is False (None when
    the transaction succeeded, or the backend could not tell: a repeat of a
    transaction that committed before the connection was lost).
    """

    succeeded: bool
    revision: int
    records: dict[str, Record | None]
    events: list[dict[str, Any]]
    failed: Compare | None = None


# --- history ---------------------------------------------------------------

EVENT_FIELDS = (
    "rev",
    "time",
    "agent",
    "op",
    "key",
    "version",
    "prev",
    "based_on",
    "check",
    "outcome",
    "hash",
    "lamport",
    "clock",
    "lease",
    "idem",
    "request",
)


@dataclass(frozen=True, slots=True)
class Event:
    """One line of history (see docs/history.md for every field)."""

    rev: int
    time: str
    agent: str
    op: str
    key: str | None
    version: int | None = None
    prev: int | None = None
    based_on: int | None = None
    check: str = "none"
    outcome: str = "ok"
    hash: str | None = None
    lamport: int = 0
    clock: dict[str, int] = field(default_factory=dict)
    lease: int | None = None
    idem: str | None = None
    request: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        known = {name: data[name] for name in EVENT_FIELDS if name in data}
        extra = {k: v for k, v in data.items() if k not in EVENT_FIELDS}
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in EVENT_FIELDS}
        out.update(self.extra)
        return out
