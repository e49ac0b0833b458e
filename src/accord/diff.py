"""Say what changed between two versions of a value.

Text gets a unified diff (difflib), JSON a list of changed paths, bytes a
size summary. Used in :class:`accord.Conflict` messages, where an agent
reads it to re-apply its change on top.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

MAX_DIFF_LINES = 80


def describe_change(old: Any, new: Any, old_label: str, new_label: str) -> str:
    """A short, readable account of how ``old`` became ``new``."""
    if isinstance(old, str) and isinstance(new, str):
        return text_diff(old, new, old_label, new_label)
    if isinstance(old, (bytes, bytearray)) or isinstance(new, (bytes, bytearray)):
        return f"bytes changed ({_size(old)} -> {_size(new)} bytes)"
    return (
        "\n".join(
            f"{path}: {json.dumps(a)} -> {json.dumps(b)}" for path, a, b in json_changes(old, new)
        )
        or "(no change)"
    )


def text_diff(old: str, new: str, old_label: str, new_label: str) -> str:
    lines = list(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        more = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"... ({more} more diff lines)\n"]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines).rstrip("\n")


_MISSING = object()


def json_changes(old: Any, new: Any, path: str = "$") -> list[tuple[str, Any, Any]]:
    """Changed JSON paths as (path, old, new); a missing side is None."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(old) | set(new), key=str):
            a, b = old.get(key, _MISSING), new.get(key, _MISSING)
            if a != b:
                sub = f"{path}.{key}"
                if a is _MISSING or b is _MISSING:
                    out.append((sub, None if a is _MISSING else a, None if b is _MISSING else b))
                else:
                    out.extend(json_changes(a, b, sub))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                out.extend(json_changes(a, b, f"{path}[{i}]"))
        return out
    return [] if old == new else [(path, old, new)]


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (bytes, bytearray, str)) else len(json.dumps(value))
