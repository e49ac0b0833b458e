"""Agent credentials: bearer tokens that decide who an agent is.

A server that many agents share (``accord mcp --http``, later the HTTP API)
must not take an agent's name from the agent: a manifest's "only ``author``
writes ``docs/draft.md``" would then hold only for clients that tell the
truth. Instead each agent gets a token from ``accord agents add NAME``, and
the server asks :func:`verify` who a presented token belongs to.

The credentials are records in the store itself, written through the one
atomic primitive like leases and queues, so every server process on the
store sees the same credentials and a revocation takes effect on the next
request of every one of them:

``.accord/agents/<digest of the name>``
    ``{"agent", "token_id", "created", "rotated"}``: the agent's one live
    credential (a digest keeps any agent name a valid record key).
``.accord/tokens/<token_id>``
    ``{"agent", "hash", "created"}``: the lookup record :func:`verify` reads,
    written with the agent as its author. A rotation or revocation replaces it
    with a tombstone, ``{"agent", "revoked"}`` with no author, that stays: a
    token id is never live again once it stopped being live.

A token reads ``accord_<token_id>_<secret>``: the token id (16 hex
characters, not secret) finds the record, the secret (256 bits from
:mod:`secrets`) proves it. The store keeps only the SHA-256 of the whole
token, compared in constant time (:func:`hmac.compare_digest`). A plain hash
is the right tool here, unlike for passwords: a 256-bit random secret cannot
be guessed, so a slow key-derivation function would only slow every request.
No credential change is written to the history, and no token or hash ever
appears in an error message.

A server need not read the token record before every write: a
:class:`TokenCache` remembers the tokens it verified, and a write made inside
:func:`presenting` carries one more compare in its own transaction, "this
token's record is still held by its agent" (the ``holder`` target, which the
backends' short write path checks in the same statement). A rotated or revoked
token's tombstone fails that compare, so the write is refused atomically,
with no extra round trip, however long the server remembered the token.
Reads cannot be made conditional that way (what a read returned cannot be
taken back), so a server verifies the token before each of them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .backends.base import iso_time
from .errors import BackendUnavailable, NotFound, PreconditionFailed, call, var
from .records import Compare, Delete, Put, Record, TxnResult

if TYPE_CHECKING:
    from .session import Session
    from .store import Store

__all__ = [
    "TOKEN_PREFIX",
    "AgentCredential",
    "Presented",
    "TokenCache",
    "add",
    "any_credentials",
    "check",
    "install_guard",
    "is_loopback",
    "list_agents",
    "presenting",
    "recheck",
    "revoke",
    "rotate",
    "verify",
]

TOKEN_PREFIX = "accord_"
"""Every token starts with this, so a leaked one is easy to recognise (and to scan for)."""

_AGENTS = ".accord/agents/"
_TOKENS = ".accord/tokens/"
_TOKEN_RE = re.compile(r"accord_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_RETRIES = 16


@dataclass(frozen=True, slots=True)
class AgentCredential:
    """One agent's credential, without its secret.

    ``token_id`` names the live token (it is printed with the token and is
    not secret); ``created`` and ``rotated`` are times on the store's clock.
    """

    agent: str
    token_id: str
    created: str
    rotated: str | None = None


@dataclass(frozen=True, slots=True)
class Presented:
    """A token that was live when it was checked: its agent, its token id and the
    SHA-256 of the whole token (never the token itself), so that a server can
    check it again (:func:`recheck`) without keeping the secret."""

    agent: str
    token_id: str
    digest: str


def _agent_key(agent: str) -> str:
    return _AGENTS + hashlib.sha256(agent.encode("utf-8")).hexdigest()[:32]


def _token_key(token_id: str) -> str:
    return _TOKENS + token_id


def _hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _new_token() -> tuple[str, str]:
    token_id = secrets.token_hex(8)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def _credential(rec: Record) -> AgentCredential:
    data = json.loads(rec.data)
    return AgentCredential(data["agent"], data["token_id"], data["created"], data.get("rotated"))


def _live(rec: Record | None) -> bool:
    return rec is not None and not rec.deleted


_NO_AUTHOR = ""
"""The author of a token's tombstone: never an agent name (a name is 1 to 128
printable characters, not blank), so the write guard's ``holder`` compare,
"held by this token's agent", fails on it."""


def _tombstone(agent: str, token_id: str, now: str) -> Put:
    # A Put, not a purge: an absent record passes a holder compare ("free"),
    # and the guard of a write made with this token must fail from now on.
    return Put(_token_key(token_id), "json", _json({"agent": agent, "revoked": now}),
               _NO_AUTHOR)


def add(store: Store, agent: str) -> tuple[AgentCredential, str]:
    """Create the credential of ``agent`` and return it with its token.

    The token is returned once and never stored: hand it to the agent now.
    The name must be a valid agent name, and one the store's manifest
    declares if it has one. Raises :class:`PreconditionFailed` if the agent
    already has a credential (:func:`rotate` replaces it).
    """
    store.session(agent)  # the one place agent names (and the manifest's agents) are checked
    backend = store.backend
    akey = _agent_key(agent)
    for _ in range(_RETRIES):
        token_id, token = _new_token()
        now = iso_time(backend.now())
        record = {"agent": agent, "token_id": token_id, "created": now, "rotated": None}
        lookup = {"agent": agent, "hash": _hash(token), "created": now}
        result = backend.txn(
            [Compare(akey, "version", "==", 0), Compare(_token_key(token_id), "version", "==", 0)],
            [
                Put(akey, "json", _json(record), agent),
                Put(_token_key(token_id), "json", _json(lookup), agent),
            ],
        )
        if result.succeeded:
            return AgentCredential(agent, token_id, now), token
        existing = result.records.get(akey)
        if _live(existing):
            assert existing is not None
            held = _credential(existing)
            raise PreconditionFailed(
                f"Agent {agent!r} already has a credential (token id {held.token_id}, created "
                f"{held.created}); nothing was changed. Rotate it for a new token (the old one "
                f"stops working): {call('credentials.rotate', var('store'), agent)}; or revoke "
                f"it first: {call('credentials.revoke', var('store'), agent)}.",
                agent=agent,
            )
        # Otherwise the random token id collided with a live one: draw again.
    raise BackendUnavailable(  # pragma: no cover - 2**64 token ids
        "Could not draw an unused token id; the store's credential records may be damaged."
    )


def rotate(store: Store, agent: str) -> tuple[AgentCredential, str]:
    """Replace the token of ``agent`` with a new one; the old token stops working at once.

    Returns the credential and the new token (shown once). Raises
    :class:`NotFound` if the agent has no credential.
    """
    backend = store.backend
    akey = _agent_key(agent)
    for _ in range(_RETRIES):
        rec = backend.get(akey)
        if not _live(rec):
            raise _no_credential(agent)
        assert rec is not None
        old = _credential(rec)
        token_id, token = _new_token()
        now = iso_time(backend.now())
        record = {"agent": agent, "token_id": token_id, "created": old.created, "rotated": now}
        lookup = {"agent": agent, "hash": _hash(token), "created": now}
        # One transaction: there is never a moment with two live tokens, or none.
        result = backend.txn(
            [Compare(akey, "version", "==", rec.version),
             Compare(_token_key(token_id), "version", "==", 0)],
            [
                Put(akey, "json", _json(record), agent),
                _tombstone(agent, old.token_id, now),
                Put(_token_key(token_id), "json", _json(lookup), agent),
            ],
        )
        if result.succeeded:
            return AgentCredential(agent, token_id, old.created, now), token
    raise PreconditionFailed(
        f"The credential of {agent!r} kept changing while it was being rotated (another rotate "
        "or revoke ran at the same time); nothing was changed. Run the command again.",
        agent=agent,
    )


def revoke(store: Store, agent: str) -> AgentCredential:
    """Delete the credential of ``agent``: its token is refused from the next request on.

    Returns the credential that was revoked. Raises :class:`NotFound` if the
    agent has none. Leases the agent holds are not touched; they lapse by TTL.
    """
    backend = store.backend
    akey = _agent_key(agent)
    for _ in range(_RETRIES):
        rec = backend.get(akey)
        if not _live(rec):
            raise _no_credential(agent)
        assert rec is not None
        old = _credential(rec)
        now = iso_time(backend.now())
        result = backend.txn(
            [Compare(akey, "version", "==", rec.version)],
            [Delete(akey, purge=True), _tombstone(agent, old.token_id, now)],
        )
        if result.succeeded:
            return old
    raise PreconditionFailed(  # pragma: no cover - needs 16 concurrent rotations
        f"The credential of {agent!r} kept changing while it was being revoked; run the command "
        "again.",
        agent=agent,
    )


def list_agents(store: Store) -> list[AgentCredential]:
    """Every agent that has a credential, by name."""
    found = [_credential(rec) for rec in store.backend.scan(_AGENTS) if _live(rec)]
    return sorted(found, key=lambda c: c.agent)


def any_credentials(store: Store) -> bool:
    """True when at least one agent has a credential in this store."""
    return bool(store.backend.scan(_AGENTS, limit=1))


def verify(store: Store, token: object) -> str | None:
    """The agent that ``token`` belongs to, or None if it is not a live token.

    Reads the store on every call (one record), so a rotation or revocation
    made by any process counts at once. The secret is compared in constant
    time; nothing about a refused token is logged or raised.
    """
    presented = check(store, token)
    return None if presented is None else presented.agent


def check(store: Store, token: object) -> Presented | None:
    """As :func:`verify`, but the :class:`Presented` token (agent, token id, digest)."""
    if not isinstance(token, str):
        return None
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        return None
    return _check(store, match.group(1), _hash(token))


def recheck(store: Store, presented: Presented) -> bool:
    """Whether ``presented`` is still a live token (one read of the store)."""
    return _check(store, presented.token_id, presented.digest) == presented


def _check(store: Store, token_id: str, digest: str) -> Presented | None:
    rec = store.backend.get(_token_key(token_id))
    if not _live(rec):
        return None
    assert rec is not None
    data = json.loads(rec.data)
    if "revoked" in data:
        return None
    if not hmac.compare_digest(str(data.get("hash", "")).encode(), digest.encode()):
        return None
    agent = data.get("agent")
    if not isinstance(agent, str) or rec.author != agent:
        return None
    return Presented(agent, token_id, digest)


# --- verified once, checked by every write ------------------------------------------

_PRESENTED: ContextVar[Presented | None] = ContextVar("accord_presented", default=None)
_GUARDED: weakref.WeakSet[Store] = weakref.WeakSet()
_GUARDING = threading.Lock()


@contextmanager
def presenting(presented: Presented) -> Iterator[None]:
    """Every write made in this block (in this thread or task) commits only while
    ``presented``'s token is live.

    Each write of a key on every write path carries the compare "the record of
    this token is still held by its agent" in its own transaction; a token
    rotated or revoked since it was checked fails it, and the write raises
    :class:`PreconditionFailed` and changes nothing. The store must have the
    guard installed (a :class:`TokenCache` installs it). Reads in the block are
    not checked: check the token before a read.
    """
    reset = _PRESENTED.set(presented)
    try:
        yield
    finally:
        _PRESENTED.reset(reset)


def _guard(session: Session, key: str, token: int | None) -> list[Compare]:
    presented = _PRESENTED.get()
    if presented is None:
        return []
    # "holder": true while the token's record is live and authored by its
    # agent; false on the tombstone a rotation or revocation leaves (see
    # _tombstone). A holder compare on another key keeps the write on the
    # backends' short path (one statement on SQLite, one call on PostgreSQL).
    return [Compare(_token_key(presented.token_id), "holder", "==", presented.agent)]


def _explain(session: Session, key: str, token: int | None, result: TxnResult) -> None:
    presented = _PRESENTED.get()
    failed = result.failed
    if presented is None or failed is None or failed.key != _token_key(presented.token_id):
        return
    raise PreconditionFailed(
        f"The token of {presented.agent!r} that came with this request was rotated or revoked "
        f"while it was being served; nothing was written to {key}. Use the agent's current "
        f"token (a new one: {call('credentials.rotate', var('store'), presented.agent)}).",
        key=key,
        agent=presented.agent,
    )


def install_guard(store: Store) -> None:
    """Make every write of ``store`` made inside :func:`presenting` check its token
    (once per store; :class:`TokenCache` calls it)."""
    with _GUARDING:
        if store in _GUARDED:
            return
        store.add_guard(_guard, _explain)
        _GUARDED.add(store)


class TokenCache:
    """What one server process remembers of the tokens it verified.

    :meth:`recall` answers from memory, with no round trip to the store, and
    is only safe for a request whose every effect is a write made inside
    :func:`presenting` (the write's own transaction checks the token); a
    request that reads, or does anything else, must :meth:`verify`, which
    reads the store. Keyed by the token's SHA-256: the cache never holds a
    secret. At most ``size`` tokens are remembered (the oldest go first).
    A Store may have several caches (an HTTP app and an MCP app); all share
    the one guard.
    """

    def __init__(self, store: Store, size: int = 4096) -> None:
        install_guard(store)
        self.store = store
        self.size = size
        self._known: dict[str, Presented] = {}
        self._lock = threading.Lock()

    def verify(self, token: object) -> Presented | None:
        """The live token's :class:`Presented` (read from the store now), or None."""
        presented = check(self.store, token)
        if presented is None:
            if isinstance(token, str):
                self._forget(_hash(token))
            return None
        with self._lock:
            if presented.digest not in self._known and len(self._known) >= self.size:
                del self._known[next(iter(self._known))]
            self._known[presented.digest] = presented
        return presented

    def recall(self, token: object) -> Presented | None:
        """The token as it was when last verified, from memory; None if not remembered."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
            return None
        return self._known.get(_hash(token))

    def recheck(self, presented: Presented) -> bool:
        """Whether ``presented`` is still live (read from the store now); forgets it if not."""
        if recheck(self.store, presented):
            return True
        self._forget(presented.digest)
        return False

    def _forget(self, digest: str) -> None:
        with self._lock:
            self._known.pop(digest, None)


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine only (127.0.0.0/8, ::1, localhost).

    The servers (``accord mcp --http``, ``accord serve``) listen on such an
    address by default and refuse any other while the store has no credential.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _no_credential(agent: str) -> NotFound:
    return NotFound(
        f"Agent {agent!r} has no credential in this store. Create one with "
        f"{call('credentials.add', var('store'), agent)} (see "
        f"{call('credentials.list_agents', var('store'))}).",
        agent=agent,
    )
