"""A shared text that converges: a CRDT document (pycrdt, Yjs's Yrs) kept in a key.

For keys whose agents edit concurrently and accept *convergence* instead of
a conflict report: every agent edits its own replica, and ``sync()`` merges
it with the stored state. Concurrent edits never conflict and nothing is
lost, but nobody is told when two edits touched the same words: they end up
interleaved. When that matters, use branches (a conflict report) or a queue
(one writer). See docs/branches.md, "Branches, queue, or a CRDT?".

The key holds the document's full state as bytes (the Yjs update format,
after a short header), written with an ordinary version-checked write. A
sync that loses the race to another agent's sync re-reads and merges again:
merging CRDT states is idempotent and commutative, so a retry can only add.

Needs the optional dependency pycrdt: ``pip install 'accord[crdt]'``.
"""

from __future__ import annotations

from collections.abc import Callable
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidValue, NotFound, UsageError
from ..keys import validate_key

if TYPE_CHECKING:
    from ..records import Doc, Value


class Session(Protocol):
    """What a shared text needs of a session (``accord.Session`` is one)."""

    agent: str

    def read(self, key: str) -> Doc: ...

    def update(self, key: str, fn: Callable[[Any], Value], *, retries: int = ...) -> Doc: ...


__all__ = ["HEADER", "SharedText"]

HEADER = b"accord-crdt-text:1\n"
"""The first bytes of a key holding a shared text (then the Yjs state)."""

_FIELD = "text"


def _pycrdt() -> Any:
    try:
        import pycrdt
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise UsageError(
            "Shared texts need the optional dependency pycrdt: pip install 'accord[crdt]'."
        ) from exc
    return pycrdt


def _state_of(key: str, value: Any) -> bytes:
    if not isinstance(value, bytes) or not value.startswith(HEADER):
        kind = type(value).__name__
        raise InvalidValue(
            f"{key} does not hold a shared text (it holds {kind}). Open shared texts only on "
            "keys created by SharedText, or on a new key.",
            key=key,
        )
    return value[len(HEADER) :]


class SharedText:
    """One agent's replica of the shared text at ``key``.

    Open it with :meth:`SharedText.open`; edit it locally (``insert``,
    ``delete``, ``set``: no store access, no waiting), and call :meth:`sync`
    to merge with everyone's edits and store the result. ``text`` is the
    replica's current text. A replica belongs to one agent; use it from one
    thread at a time.
    """

    def __init__(self, session: Session, key: str) -> None:
        pycrdt = _pycrdt()
        self.session = session
        self.key = validate_key(key)
        self._doc = pycrdt.Doc()
        self._text = pycrdt.Text()
        self._doc[_FIELD] = self._text
        self.version = 0

    @classmethod
    def open(cls, session: Session, key: str) -> SharedText:
        """A replica of the shared text at ``key`` (empty if the key does not exist).

        Raises :class:`InvalidValue` if the key holds something else.
        """
        replica = cls(session, key)
        try:
            doc = session.read(key)
        except NotFound:
            return replica
        replica._doc.apply_update(_state_of(key, doc.value))
        replica.version = doc.version
        return replica

    @classmethod
    def read(cls, session: Session, key: str) -> str:
        """The stored text of ``key`` (what every agent sees after its next sync)."""
        return cls.open(session, key).text

    @property
    def text(self) -> str:
        return str(self._text)

    def insert(self, index: int, text: str) -> None:
        """Insert ``text`` before character ``index`` of the replica."""
        current = self.text
        if not 0 <= index <= len(current):
            raise UsageError(f"index {index} is outside the text (0 to {len(current)}).")
        self._text.insert(len(current[:index].encode("utf-8")), text)

    def delete(self, index: int, length: int) -> None:
        """Delete ``length`` characters from character ``index`` of the replica."""
        current = self.text
        if index < 0 or length < 0 or index + length > len(current):
            raise UsageError(
                f"Cannot delete {length} characters at {index}: the text has {len(current)}."
            )
        start = len(current[:index].encode("utf-8"))
        end = start + len(current[index : index + length].encode("utf-8"))
        del self._text[start:end]

    def set(self, new_text: str) -> None:
        """Make the replica read ``new_text``, as line edits of what it reads now.

        Agents often rewrite a whole text; recording the rewrite as the
        changed lines (not "delete all, insert all") is what lets it merge
        with other agents' edits of other lines.
        """
        if not isinstance(new_text, str):
            raise InvalidValue(f"A shared text takes str, not {type(new_text).__name__}.")
        old_lines = self.text.splitlines(keepends=True)
        new_lines = new_text.splitlines(keepends=True)
        offsets = [0]
        for line in old_lines:
            offsets.append(offsets[-1] + len(line.encode("utf-8")))
        ops = SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes()
        with self._doc.transaction():
            # From the end backwards, so the byte offsets computed on the old
            # text stay valid while we edit.
            for tag, i1, i2, j1, j2 in reversed(ops):
                if tag == "equal":
                    continue
                if i2 > i1:
                    del self._text[offsets[i1] : offsets[i2]]
                if j2 > j1:
                    self._text.insert(offsets[i1], "".join(new_lines[j1:j2]))

    def sync(self, *, retries: int = 32) -> Doc:
        """Merge the stored state into the replica and store the merged state.

        Afterwards ``text`` includes every edit stored before, and the store
        includes this replica's edits. Returns the written :class:`Doc`.
        Losing the race to another agent's sync means merging again (up to
        ``retries`` times, then :class:`RetriesExhausted`).
        """
        doc = self._doc

        def merge(stored: Any) -> bytes:
            if stored is not None:
                doc.apply_update(_state_of(self.key, stored))
            state: bytes = doc.get_update()
            return HEADER + state

        written = self.session.update(self.key, merge, retries=retries)
        self.version = written.version
        return written
