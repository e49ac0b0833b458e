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
    ``{"agent", "hash", "created"}``: the lookup record :func:`verify` reads.

A token reads ``accord_<token_id>_<secret>``: the token id (16 hex
characters, not secret) finds the record, the secret (256 bits from
:mod:`secrets`) proves it. The store keeps only the SHA-256 of the whole
token, compared in constant time (:func:`hmac.compare_digest`). A plain hash
is the right tool here, unlike for passwords: a 256-bit random secret cannot
be guessed, so a slow key-derivation function would only slow every request.
No credential change is written to the history, and no token or hash ever
appears in an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .backends.base import iso_time
from .errors import BackendUnavailable, NotFound, PreconditionFailed, call, var
from .records import Compare, Delete, Put, Record

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "TOKEN_PREFIX",
    "AgentCredential",
    "add",
    "any_credentials",
    "is_loopback",
    "list_agents",
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
                Delete(_token_key(old.token_id), purge=True),
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
        result = backend.txn(
            [Compare(akey, "version", "==", rec.version)],
            [Delete(akey, purge=True), Delete(_token_key(old.token_id), purge=True)],
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
    if not isinstance(token, str):
        return None
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        return None
    rec = store.backend.get(_token_key(match.group(1)))
    if not _live(rec):
        return None
    assert rec is not None
    data = json.loads(rec.data)
    if not hmac.compare_digest(str(data.get("hash", "")).encode(), _hash(token).encode()):
        return None
    agent = data.get("agent")
    return agent if isinstance(agent, str) else None


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
