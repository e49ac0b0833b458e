"""Three-way merges of N versions against their common base.

Text is merged by lines, diff3-style: each side is diffed against the base
with :class:`difflib.SequenceMatcher` (the standard library's matcher, PSF
licence: no diff algorithm is written here), its changes become base ranges
with replacement lines, and ranges from different sides that touch the same
base lines form one *region*. A region changed by one side (or changed
identically by several) merges cleanly; a region that sides changed
differently is a conflict, reported with the base lines it covers, the base
text and each side's text.

Two changes are in the same region when their base ranges overlap, when both
insert at the same point, or when one inserts strictly inside a range the
other replaces. Edits of neighbouring lines (line 3 by one side, line 4 by
another) do not overlap and merge cleanly; git would call them a conflict,
but the result is unambiguous and agents edit neighbouring lines all the time.

JSON is merged structurally, by path: objects key by key (an addition, a
change and a removal of different keys all merge), arrays of unchanged
length element by element, other arrays as sequences of elements (the same
region rule as text, on canonical JSON of each element). A path that sides
changed differently (an edit against a removal, two different values, a
change of type) is a conflict naming the path, e.g. ``$.sections[2].title``.

Bytes are merged as one opaque value: one changed side wins, two different
changes conflict.

Why difflib rather than diff-match-patch (Apache-2.0, also fine): difflib
is in the standard library, works on any sequence of hashable items (lines,
JSON elements), and is deterministic. diff-match-patch stops at a time limit
(``Diff_Timeout``) and then returns a coarser diff, so a merge could come out
differently on a slow machine. The GPL-only ``merge3`` is not used.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any, ClassVar

from .errors import InvalidValue

__all__ = [
    "DELETED",
    "MergeConflict",
    "MergeOutcome",
    "merge_bytes",
    "merge_json",
    "merge_text",
    "merge_values",
]


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self) -> str:
        return self.name


DELETED: Any = _Sentinel("DELETED")
"""A side's content at a JSON path that side removed (also a ``resolve`` answer)."""

_NULL: Any = _Sentinel("NULL")

Resolver = Callable[["MergeConflict"], Any]


@dataclass(frozen=True)
class MergeConflict:
    """One place the sides changed differently.

    ``where`` says where in words: ``"lines 3-5"``, ``"insertion after line
    7"`` (text, lines of the base, 1-based) or a JSON path such as
    ``"$.sections[2].title"``. ``base`` is the base's content there and
    ``sides`` maps each side's label (a branch id, or ``"current"`` for the
    key's value when it moved since the base) to its content there; a JSON
    side that removed the path holds :data:`DELETED`. For text, ``start``
    and ``end`` are the base line range (0-based, end exclusive).

    A ``resolve`` function given to a merge receives each conflict and
    returns the content to use there (text for a text region; a JSON value,
    ``MergeConflict.DELETE`` or ``MergeConflict.NULL`` for a JSON path), or
    None to leave it unresolved. ``conflict.take(label)`` returns a side's
    content in that form.
    """

    kind: str
    where: str
    base: Any
    sides: dict[str, Any]
    path: str | None = None
    start: int | None = None
    end: int | None = None

    DELETE: ClassVar[Any] = DELETED
    NULL: ClassVar[Any] = _NULL

    def take(self, label: str) -> Any:
        """The content of side ``label`` as a ``resolve`` answer."""
        if label not in self.sides:
            raise InvalidValue(
                f"No side {label!r} in this conflict; the sides are {', '.join(self.sides)}."
            )
        value = self.sides[label]
        if value is None and self.kind == "json":
            return _NULL
        return value

    def describe(self) -> str:
        """A readable account: where, the base, and each side."""
        lines = [f"conflict at {self.where}:"]
        for label, content in [("base", self.base), *self.sides.items()]:
            lines.append(f"  {label}:")
            lines.extend("    " + line for line in _show(content, self.kind).splitlines() or [""])
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (a removed side is ``{"deleted": true}``).

        Bytes (``kind`` ``"bytes"``) go as standard base64 text, as every
        JSON surface carries them (:func:`accord.records.to_wire`).
        """

        def plain(value: Any) -> Any:
            if value is DELETED:
                return {"deleted": True}
            if isinstance(value, bytes):
                return base64.b64encode(value).decode("ascii")
            return value

        return {
            "kind": self.kind,
            "where": self.where,
            "path": self.path,
            "start": self.start,
            "end": self.end,
            "base": plain(self.base),
            "sides": {k: plain(v) for k, v in self.sides.items()},
        }


def _show(content: Any, kind: str) -> str:
    if content is DELETED:
        return "(removed)"
    if kind == "text" and isinstance(content, str):
        return content if content else "(nothing)"
    if isinstance(content, bytes):
        return f"<{len(content)} bytes>"
    return json.dumps(content, indent=2, sort_keys=True)


@dataclass
class MergeOutcome:
    """What a merge computed: the value, the conflicts left, and those resolved."""

    value: Any
    conflicts: list[MergeConflict] = field(default_factory=list)
    resolved: list[MergeConflict] = field(default_factory=list)


# --- sequences (text lines, JSON array elements) ------------------------------------


@dataclass
class _Change:
    side: int
    start: int
    end: int
    items: list[Any]


@dataclass
class _Region:
    start: int
    end: int
    closed: bool  # the point ``end`` itself is covered (an insertion there)
    changes: list[_Change]


def _changes(base: Sequence[Any], side: Sequence[Any], index: int) -> list[_Change]:
    # autojunk=False: with it, lines that occur often (blank lines, "}") are
    # ignored when matching, which makes diffs of long texts worse.
    matcher = SequenceMatcher(None, base, side, autojunk=False)
    return [
        _Change(index, i1, i2, list(side[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def _regions(base: Sequence[Any], sides: Sequence[Sequence[Any]]) -> list[_Region]:
    """Group every side's changes into regions of the base (see module doc)."""
    changes: list[_Change] = []
    for index, side in enumerate(sides):
        if list(side) != list(base):
            changes.extend(_changes(base, side, index))
    # Insertions sort before replacements that start at the same line, so an
    # insertion at a region's start is always seen first.
    changes.sort(key=lambda c: (c.start, 0 if c.start == c.end else 1, c.end))
    regions: list[_Region] = []
    for change in changes:
        insertion = change.start == change.end
        current = regions[-1] if regions else None
        joins = current is not None and (
            change.start < current.end
            or (insertion and change.start == current.end and current.closed)
        )
        if current is not None and joins:
            if change.end > current.end:
                current.end = change.end
                current.closed = False
            elif insertion and change.start == current.end:
                current.closed = True
            current.changes.append(change)
        else:
            regions.append(_Region(change.start, change.end, insertion, [change]))
    return regions


def _side_content(base: Sequence[Any], region: _Region, side: int) -> list[Any] | None:
    """Side ``side``'s version of the region, or None if it changed nothing there."""
    own = [c for c in region.changes if c.side == side]
    if not own:
        return None
    out: list[Any] = []
    pos = region.start
    for change in own:  # one side's changes are disjoint and in order
        out.extend(base[pos : change.start])
        out.extend(change.items)
        pos = change.end
    out.extend(base[pos : region.end])
    return out


# --- text --------------------------------------------------------------------------


def _text_where(start: int, end: int) -> str:
    if start == end:
        return "the start (insertion)" if start == 0 else f"insertion after line {start}"
    if end - start == 1:
        return f"line {start + 1}"
    return f"lines {start + 1}-{end}"


def merge_text(
    base: str,
    sides: Sequence[tuple[str, str]],
    resolve: Resolver | None = None,
) -> MergeOutcome:
    """Merge texts ``sides`` (``(label, text)`` pairs) against ``base``, by lines.

    Unresolved conflicts appear in the value between git-style markers
    (``<<<<<<< label``, ``||||||| base``, ``======= label``, ``>>>>>>>``), so
    the value is readable but must not be committed as is.
    """
    for label, text in sides:
        if not isinstance(text, str):
            raise InvalidValue(
                f"Side {label!r} is {type(text).__name__}, not text: a text merge needs str "
                "on every side."
            )
    base_lines = base.splitlines(keepends=True)
    side_lines = [text.splitlines(keepends=True) for _, text in sides]
    labels = [label for label, _ in sides]
    out: list[str] = []
    outcome = MergeOutcome(value="")
    pos = 0
    for region in _regions(base_lines, side_lines):
        out.extend(base_lines[pos : region.start])
        pos = region.end
        contents: dict[str, list[str]] = {}
        for index, label in enumerate(labels):
            content = _side_content(base_lines, region, index)
            if content is not None:
                contents[label] = content
        distinct = {"".join(c) for c in contents.values()}
        if len(distinct) == 1:
            out.extend(next(iter(contents.values())))
            continue
        conflict = MergeConflict(
            kind="text",
            where=_text_where(region.start, region.end),
            base="".join(base_lines[region.start : region.end]),
            sides={label: "".join(lines) for label, lines in contents.items()},
            start=region.start,
            end=region.end,
        )
        answer = resolve(conflict) if resolve is not None else None
        if answer is not None:
            if not isinstance(answer, str):
                raise InvalidValue(
                    f"resolve() returned {type(answer).__name__} for the text conflict at "
                    f"{conflict.where}; return the text to put there (str), or None to leave "
                    "it unresolved."
                )
            out.append(answer)
            outcome.resolved.append(conflict)
            continue
        outcome.conflicts.append(conflict)
        out.append(f"<<<<<<< {next(iter(contents))}\n")
        first = True
        for label, lines in contents.items():
            if not first:
                out.append(f"======= {label}\n")
            out.append(_ended("".join(lines)))
            if first:
                out.append("||||||| base\n")
                out.append(_ended(conflict.base))
                first = False
        out.append(">>>>>>> end of conflict\n")
    out.extend(base_lines[pos:])
    outcome.value = "".join(out)
    return outcome


def _ended(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


# --- JSON --------------------------------------------------------------------------


_MISSING: Any = _Sentinel("MISSING")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _canon(value: Any) -> str:
    if value is _MISSING or value is DELETED:
        return "\0missing"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _child(path: str, key: Any) -> str:
    if isinstance(key, str) and _IDENT.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def merge_json(
    base: Any,
    sides: Sequence[tuple[str, Any]],
    resolve: Resolver | None = None,
) -> MergeOutcome:
    """Merge JSON values ``sides`` (``(label, value)`` pairs) against ``base``, by path.

    Unresolved conflicts leave the base's value at their path.
    """
    outcome = MergeOutcome(value=None)
    labels = [label for label, _ in sides]
    value = _merge_node(base, [v for _, v in sides], labels, "$", resolve, outcome)
    outcome.value = None if value is _MISSING else value
    return outcome


def _merge_node(
    base: Any,
    sides: list[Any],
    labels: list[str],
    path: str,
    resolve: Resolver | None,
    outcome: MergeOutcome,
) -> Any:
    base_c = _canon(base)
    canon = [_canon(v) for v in sides]
    changed = [i for i, c in enumerate(canon) if c != base_c]
    if not changed:
        return base
    if len({canon[i] for i in changed}) == 1:
        return sides[changed[0]]
    new = [sides[i] for i in changed]
    if (isinstance(base, dict) or base is _MISSING) and all(isinstance(v, dict) for v in new):
        return _merge_object(
            {} if base is _MISSING else base, sides, labels, path, resolve, outcome
        )
    if isinstance(base, list) and all(isinstance(v, list) for v in new):
        if all(len(v) == len(base) for v in new):
            return [
                _merge_node(
                    item,
                    [v[i] if isinstance(v, list) else item for v in sides],
                    labels,
                    f"{path}[{i}]",
                    resolve,
                    outcome,
                )
                for i, item in enumerate(base)
            ]
        return _merge_array(base, sides, labels, path, resolve, outcome)
    conflict = MergeConflict(
        kind="json",
        where=path,
        path=path,
        base=DELETED if base is _MISSING else base,
        sides={labels[i]: DELETED if sides[i] is _MISSING else sides[i] for i in changed},
    )
    return _settle(conflict, base, resolve, outcome)


def _settle(
    conflict: MergeConflict, keep: Any, resolve: Resolver | None, outcome: MergeOutcome
) -> Any:
    answer = resolve(conflict) if resolve is not None else None
    if answer is None:
        outcome.conflicts.append(conflict)
        return keep
    outcome.resolved.append(conflict)
    if answer is DELETED:
        return _MISSING
    if answer is _NULL:
        return None
    _canon(answer)  # refuse what JSON cannot hold, here rather than at commit
    return answer


def _merge_object(
    base: dict[str, Any],
    sides: list[Any],
    labels: list[str],
    path: str,
    resolve: Resolver | None,
    outcome: MergeOutcome,
) -> Any:
    keys: dict[str, None] = dict.fromkeys(base)
    for side in sides:
        if isinstance(side, dict):
            keys.update(dict.fromkeys(side))
    out: dict[str, Any] = {}
    for key in keys:
        sub_sides = [
            side.get(key, _MISSING) if isinstance(side, dict) else base.get(key, _MISSING)
            for side in sides
        ]
        value = _merge_node(
            base.get(key, _MISSING), sub_sides, labels, _child(path, key), resolve, outcome
        )
        if value is not _MISSING:
            out[key] = value
    return out


def _merge_array(
    base: list[Any],
    sides: list[Any],
    labels: list[str],
    path: str,
    resolve: Resolver | None,
    outcome: MergeOutcome,
) -> list[Any]:
    base_items = [_canon(v) for v in base]
    side_items = [[_canon(v) for v in s] if isinstance(s, list) else base_items for s in sides]
    out: list[Any] = []
    pos = 0
    for region in _regions(base_items, side_items):
        out.extend(base[pos : region.start])
        pos = region.end
        contents: dict[str, list[Any]] = {}
        for index, label in enumerate(labels):
            content = _side_content(base_items, region, index)
            if content is not None:
                contents[label] = [json.loads(c) for c in content]
        distinct = {_canon(c) for c in contents.values()}
        if len(distinct) == 1:
            out.extend(next(iter(contents.values())))
            continue
        where = f"{path}[{region.start}:{region.end}]"
        conflict = MergeConflict(
            kind="json",
            where=where,
            path=where,
            base=base[region.start : region.end],
            sides=contents,
            start=region.start,
            end=region.end,
        )
        answer = resolve(conflict) if resolve is not None else None
        if answer is None:
            outcome.conflicts.append(conflict)
            out.extend(base[region.start : region.end])
            continue
        outcome.resolved.append(conflict)
        if answer is DELETED:
            continue
        if not isinstance(answer, list):
            raise InvalidValue(
                f"resolve() returned {type(answer).__name__} for the array conflict at {where}; "
                "return the list of elements to put in that slice."
            )
        _canon(answer)
        out.extend(answer)
    out.extend(base[pos:])
    return out


# --- bytes and dispatch ---------------------------------------------------------------


def merge_bytes(
    base: bytes, sides: Sequence[tuple[str, bytes]], resolve: Resolver | None = None
) -> MergeOutcome:
    """Bytes are opaque: one changed side wins, different changes conflict."""
    changed = {label: value for label, value in sides if value != base}
    outcome = MergeOutcome(value=base)
    if not changed:
        return outcome
    if len(set(changed.values())) == 1:
        outcome.value = next(iter(changed.values()))
        return outcome
    conflict = MergeConflict(kind="bytes", where="the whole value", base=base, sides=changed)
    answer = resolve(conflict) if resolve is not None else None
    if answer is None:
        outcome.conflicts.append(conflict)
    elif not isinstance(answer, bytes):
        raise InvalidValue("resolve() must return bytes for a bytes conflict, or None.")
    else:
        outcome.value = answer
        outcome.resolved.append(conflict)
    return outcome


def merge_values(
    kind: str,
    base: Any,
    sides: Sequence[tuple[str, Any]],
    resolve: Resolver | None = None,
) -> MergeOutcome:
    """Merge by the value's type: ``kind`` is ``"text"``, ``"json"`` or ``"bytes"``."""
    if kind == "text":
        return merge_text(base, sides, resolve)
    if kind == "json":
        return merge_json(base, sides, resolve)
    if kind == "bytes":
        return merge_bytes(base, sides, resolve)
    raise InvalidValue(f"Cannot merge values of kind {kind!r}; kinds are text, json and bytes.")
