"""Resource keys that are glob patterns: validate, match, and decide overlaps.

A manifest's resource key is an exact key or a pattern: ``*`` matches any
characters except ``/``, ``**`` any characters including ``/``, ``?`` one
character except ``/``, ``[abc]``/``[!abc]``/``[a-z]`` one character of (or
not of) a set, never ``/``. :func:`compile_pattern` turns a pattern into a
regular expression (cached); :func:`patterns_overlap` decides whether some
key matches two patterns (``accord plan --check`` reports overlapping
patterns with different strategies), without enumerating keys.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import InvalidKey
from ..keys import validate_key

_WILDCARDS = re.compile(r"[*?\[]")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
"""What no key, pattern or agent name may contain."""


def is_pattern(key: str) -> bool:
    """Whether a resource key is a glob pattern (contains ``*``, ``?`` or ``[``)."""
    return _WILDCARDS.search(key) is not None


def pattern_problem(key: str) -> str | None:
    """Why ``key`` is not a valid resource key or pattern, or None."""
    if not is_pattern(key):
        try:
            validate_key(key)
        except InvalidKey as exc:
            return exc.message
        return None
    if CONTROL_CHARACTERS.search(key):
        return f"pattern {key!r} contains a control character."
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            return (
                f"pattern {key!r} has an empty, '.' or '..' segment; patterns look like keys, "
                "such as 'notes/*'."
            )
    if key.startswith(".accord/"):
        return "'.accord/' is reserved for accord's own records."
    try:
        _tokens(key)
    except ValueError as exc:
        return f"pattern {key!r}: {exc}."
    return None


_PATTERN_CACHE: dict[str, re.Pattern[str]] = {}


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of a glob ``pattern`` (see the module docstring)."""
    compiled = _PATTERN_CACHE.get(pattern)
    if compiled is not None:
        return compiled
    parts: list[str] = []
    for token in _tokens(pattern):
        kind = token[0]
        if kind == "lit":
            parts.append(re.escape(token[1]))
        elif kind == "any":
            parts.append("[^/]")
        elif kind == "star":
            parts.append("[^/]*")
        elif kind == "globstar":
            parts.append(".*")
        else:
            _, negated, ranges = token
            body = "".join(
                re.escape(a) if a == b else f"{re.escape(a)}-{re.escape(b)}" for a, b in ranges
            )
            parts.append(f"[^/{body}]" if negated else f"(?!/)[{body}]")
    compiled = re.compile("".join(parts), re.DOTALL)
    if len(_PATTERN_CACHE) < 4096:
        _PATTERN_CACHE[pattern] = compiled
    return compiled


Token = tuple[Any, ...]


def _tokens(pattern: str) -> list[Token]:
    out: list[Token] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                out.append(("globstar",))
                i += 2
                while i < len(pattern) and pattern[i] == "*":
                    i += 1
            else:
                out.append(("star",))
                i += 1
        elif ch == "?":
            out.append(("any",))
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if pattern[i + 1 : i + 3] == "!]":
                end = pattern.find("]", i + 3)
            if end < 0:
                raise ValueError("'[' opens a character set that is never closed with ']'")
            body = pattern[i + 1 : end]
            negated = body.startswith("!")
            if negated:
                body = body[1:]
            ranges: list[tuple[str, str]] = []
            j = 0
            while j < len(body):
                if j + 2 < len(body) and body[j + 1] == "-":
                    lo, hi = body[j], body[j + 2]
                    if lo > hi:
                        raise ValueError(f"the range {lo}-{hi} is backwards")
                    ranges.append((lo, hi))
                    j += 3
                else:
                    ranges.append((body[j], body[j]))
                    j += 1
            if not ranges:
                raise ValueError("'[]' is an empty character set")
            out.append(("set", negated, tuple(ranges)))
            i = end + 1
        else:
            out.append(("lit", ch))
            i += 1
    return out


def patterns_overlap(a: str, b: str) -> bool:
    """Whether some key matches both glob patterns ``a`` and ``b``.

    Exact: it explores the product of the two patterns' automata, so
    ``notes/*`` and ``*/draft.md`` overlap (``notes/draft.md``) while
    ``notes/*`` and ``notes/*/x`` do not (``*`` does not cross ``/``).
    """
    ta, tb = _tokens(a), _tokens(b)
    start = (0, 0)
    seen = {start}
    stack = [start]
    while stack:
        i, j = stack.pop()
        if i == len(ta) and j == len(tb):
            return True
        moves: list[tuple[int, int]] = []
        # A star may match nothing: skip it without consuming a character.
        if i < len(ta) and ta[i][0] in ("star", "globstar"):
            moves.append((i + 1, j))
        if j < len(tb) and tb[j][0] in ("star", "globstar"):
            moves.append((i, j + 1))
        if i < len(ta) and j < len(tb) and _chars_meet(ta[i], tb[j]):
            ni = i if ta[i][0] in ("star", "globstar") else i + 1
            nj = j if tb[j][0] in ("star", "globstar") else j + 1
            moves.append((ni, nj))
        for move in moves:
            if move not in seen:
                seen.add(move)
                stack.append(move)
    return False


def _single(token: Token, ch: str) -> bool:
    kind = token[0]
    if kind == "lit":
        return bool(token[1] == ch)
    if kind == "globstar":
        return True
    if ch == "/":
        return False
    if kind in ("any", "star"):
        return True
    _, negated, ranges = token
    inside = any(lo <= ch <= hi for lo, hi in ranges)
    return bool(inside != negated)


def _chars_meet(x: Token, y: Token) -> bool:
    """Whether one character can satisfy both tokens (as one-character matchers)."""
    if x[0] == "lit":
        return _single(y, x[1])
    if y[0] == "lit":
        return _single(x, y[1])
    if x[0] != "set" or y[0] != "set":
        # any/star/globstar against a set or a wildcard: a non-'/' character
        # in the set (or outside a negated one) exists, the alphabet being
        # unbounded.
        other = y if x[0] != "set" else x
        if other[0] != "set":
            return True
        return bool(other[1]) or any(
            _some_char(lo, hi, lambda c: c != "/") for lo, hi in other[2]
        )
    if x[1] and y[1]:
        return True
    positive, negative = (x, y) if not x[1] else (y, x)
    return any(
        _some_char(lo, hi, lambda c: c != "/" and _single(negative, c)) for lo, hi in positive[2]
    )


def _some_char(lo: str, hi: str, ok: Any) -> bool:
    # Character sets in patterns are small; a very wide range certainly holds
    # a character the other side accepts.
    if ord(hi) - ord(lo) > 4096:
        return True
    return any(ok(chr(c)) for c in range(ord(lo), ord(hi) + 1))
