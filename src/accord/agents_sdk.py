"""accord for the OpenAI Agents SDK: tools whose conflicts reach the model, and a race-free session.

The SDK hides a tool's exception from the model by default ("An error
occurred while running the tool"), so an agent whose write lost a race never
learns why. :func:`tools` gives an agent accord's operations as
``function_tool``\\ s whose failures reach the model as accord's own message
(who changed the key, the version to use)::

    from agents import Agent
    from accord.agents_sdk import AccordSession, tools

    store = accord.open("sqlite:///state.db")
    critic = Agent(name="critic", tools=tools(store.session("critic")))
    await Runner.run(critic, "review the draft", session=AccordSession("review-1", store))

:class:`AccordSession` keeps a conversation in one accord key; concurrent
runs on one session id append without losing each other's items (every
change is a versioned write, retried on a conflict).

The session's methods run on accord's async API (:mod:`accord.aio`), opened
on first use over the same store: natively on PostgreSQL (no worker thread),
through the thread-offload adapter on SQLite and memory. The tools are
synchronous functions, which the SDK runs in worker threads.
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

try:
    from agents import FunctionTool, RunContextWrapper, function_tool
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import SessionSettings, resolve_session_limit
    from agents.tool import default_tool_error_function
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "accord.agents_sdk needs the OpenAI Agents SDK: pip install 'accord[agents]'."
    ) from exc

from ._async_twin import AsyncTwin
from ._segments import encode_segment
from ._session_async import AsyncSession
from .errors import AccordError, Conflict, InvalidValue, NotFound, Timeout, UsageError
from .records import Value, to_wire
from .session import Session
from .store import Store
from .store import open as open_store
from .strategies.branch import Branch
from .strategies.lease import Lease

__all__ = ["AccordSession", "accord_error_message", "tools"]

def accord_error_message(ctx: RunContextWrapper[Any], error: Exception) -> str:
    """The ``failure_error_function`` of accord's tools: accord's message for its errors.

    An :class:`accord.AccordError` (also one the SDK wrapped) reaches the
    model as its message, which says what happened and what to do next.
    Any other exception gets the SDK's default, which hides the details.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, AccordError):
            name, message = type(current).__name__, str(current)
            return message if message.startswith(name) else f"{name}: {message}"
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return default_tool_error_function(ctx, error)


def _value(value: str, is_json: bool) -> Value:
    if not is_json:
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise InvalidValue(
            f"is_json was true but the value is not valid JSON ({exc}). Send JSON text, or "
            "set is_json to false to store the text as it is."
        ) from exc


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False)


def tools(session: Session, *, prefix: str = "accord_") -> list[FunctionTool]:
    """accord's operations as Agents SDK function tools, acting as ``session``'s agent.

    ``{prefix}read``, ``{prefix}write`` (with ``expect``), ``{prefix}submit``
    (a change request for a key's writer), ``{prefix}lease_acquire`` /
    ``{prefix}lease_release``, ``{prefix}fork``, ``{prefix}branch_write`` and
    ``{prefix}merge``. Results are JSON text. A failure reaches the model as
    accord's message (see :func:`accord_error_message`), e.g. a
    :class:`accord.Conflict` naming who changed the key and the version to
    write against. A lease acquired through these tools is held by this tool
    set and used by its writes to that key until released.
    """
    leases: dict[str, Lease] = {}
    branches: dict[str, Branch] = {}
    lock = threading.Lock()

    def read(key: str) -> str:
        """Read the current value of a shared key, with its version.

        Args:
            key: The key, a path such as "docs/draft.md".
        """
        doc = session.read(key)
        kind, wire = to_wire(doc.value)
        return _dump(
            {"key": key, "version": doc.version, "author": doc.author, "kind": kind,
             "value": wire}
        )

    def write(key: str, value: str, expect: int | None, is_json: bool = False) -> str:
        """Write a shared key, only if it is still at the version you read.

        Args:
            key: The key to write.
            value: The new value (text, or JSON text when is_json is true).
            expect: The version you read (0 to create the key). A conflict tells you
                who changed it since and which version to use.
            is_json: Store the value as JSON data instead of text.
        """
        with lock:
            lease = leases.get(key)
        doc = session.write(key, _value(value, is_json), expect=expect, lease=lease)
        return _dump({"key": key, "version": doc.version, "written": True})

    def submit(key: str, change: str, wait_seconds: float = 0, is_json: bool = False) -> str:
        """Ask the writer of a key to apply a change (the queue); the writer decides.

        Args:
            key: The key whose writer should apply the change.
            change: What to change, in words or as JSON text.
            wait_seconds: How long to wait for the writer's decision (0: do not wait).
            is_json: Send the change as JSON data instead of text.
        """
        request = session.submit(key, _value(change, is_json))
        if wait_seconds > 0:
            # Still undecided after the wait: the status says "pending".
            with contextlib.suppress(Timeout):
                request = request.wait(timeout=wait_seconds)
        out: dict[str, Any] = {"request": request.id, "key": key, "status": request.status}
        if request.rejected:
            out["reason"] = request.reason
        elif request.accepted and request.outcome is not None and not isinstance(
            request.outcome, str
        ):
            out["version"] = request.outcome.version
        return _dump(out)

    def lease_acquire(key: str, ttl_seconds: float = 30, wait_seconds: float = 10) -> str:
        """Take the exclusive lease on a key, so that nobody else writes it meanwhile.

        Args:
            key: The key to lease.
            ttl_seconds: How long the lease lasts unless released or renewed.
            wait_seconds: How long to wait for the lease if someone else holds it.
        """
        lease = session.acquire(key, ttl=ttl_seconds, wait=wait_seconds)
        with lock:
            leases[key] = lease
        return _dump({"key": key, "token": lease.token, "ttl_seconds": ttl_seconds})

    def lease_release(key: str) -> str:
        """Release the lease you hold on a key.

        Args:
            key: The key whose lease to release.
        """
        with lock:
            lease = leases.pop(key, None)
        if lease is None:
            raise UsageError(
                f"You hold no lease on {key} through these tools; there is nothing to release. "
                "Acquire it first with lease_acquire."
            )
        lease.release()
        return _dump({"key": key, "released": True})

    def fork(key: str) -> str:
        """Take a private copy (a branch) of a key to work on without blocking others.

        Args:
            key: The key to fork.
        """
        branch = session.fork(key)
        with lock:
            branches[branch.id] = branch
        kind, wire = to_wire(branch.read())
        return _dump(
            {"key": key, "branch": branch.id, "base_version": branch.base_version, "kind": kind,
             "value": wire}
        )

    def branch_write(key: str, branch: str, value: str, is_json: bool = False) -> str:
        """Replace the value of your branch of a key (the key itself does not change).

        Args:
            key: The key the branch was forked from.
            branch: The branch id that fork returned.
            value: The branch's new value.
            is_json: Store the value as JSON data instead of text.
        """
        found = _branch(key, branch)
        found.write(_value(value, is_json))
        return _dump({"key": key, "branch": branch, "written": True})

    def merge(key: str, branch_ids: list[str], commit: bool = True) -> str:
        """Merge branches of a key three-way and, if nothing conflicts, write the result.

        Args:
            key: The key the branches were forked from.
            branch_ids: The branches to merge.
            commit: Write the merged value when the merge is clean.
        """
        result = session.store.merge(key, [_branch(key, b) for b in branch_ids],
                                     agent=session.agent)
        kind, wire = to_wire(result.value)
        out: dict[str, Any] = {"key": key, "clean": result.clean, "report": result.report(),
                               "kind": kind, "value": wire}
        if commit and result.clean:
            out["version"] = result.commit().version
        return _dump(out)

    def _branch(key: str, branch_id: str) -> Branch:
        with lock:
            found = branches.get(branch_id)
        if found is not None and found.key == key:
            return found
        for candidate in session.store.branches(key):
            if candidate.id == branch_id:
                return candidate
        raise NotFound(
            f"No open branch {branch_id} of {key}. Fork the key first; fork returns the branch id.",
            key=key,
            branch=branch_id,
        )

    made: list[FunctionTool] = []
    for fn in (read, write, submit, lease_acquire, lease_release, fork, branch_write, merge):
        made.append(
            function_tool(
                fn,
                name_override=prefix + fn.__name__,
                failure_error_function=accord_error_message,
            )
        )
    return made


class AccordSession:
    """An Agents SDK ``Session`` whose conversation is one versioned accord key.

    ``store`` is an :class:`accord.Store` or a store URL. The items live as a
    JSON list at ``{prefix}/{session_id}`` (the id escaped as one key
    segment). Every change (``add_items``, ``pop_item``, ``clear_session``)
    is a write against the version it read, retried on a conflict up to
    ``retries`` times, so concurrent runs on one session id never lose each
    other's items, and the history records which ``agent`` wrote each
    version. Each call rewrites the list: a conversation is bounded by the
    store's value size limit (16 MiB by default).

    Implements the SDK's ``Session`` protocol (``session_id``,
    ``session_settings``, ``get_items``, ``add_items``, ``pop_item``,
    ``clear_session``).
    """

    def __init__(
        self,
        session_id: str,
        store: Store | str,
        *,
        agent: str = "agents-sdk",
        prefix: str = "agents/sessions",
        session_settings: SessionSettings | None = None,
        retries: int = 64,
    ) -> None:
        if not isinstance(session_id, str):
            raise UsageError(f"session_id must be a string, not {type(session_id).__name__}.")
        self.session_id = session_id
        self.session_settings: SessionSettings | None = session_settings or SessionSettings()
        owned = isinstance(store, str)
        self.store: Store = open_store(store) if isinstance(store, str) else store
        self.key = f"{prefix}/{encode_segment(session_id)}"
        self.agent = agent
        self.retries = retries
        self._session = self.store.session(agent)
        self._twin = AsyncTwin(self.store, owns_store=owned)

    def __repr__(self) -> str:
        return f"AccordSession({self.session_id!r}, key={self.key!r}, agent={self.agent!r})"

    def close(self) -> None:
        """Close the async face (if opened), and the accord store if this
        object opened it from a URL."""
        self._twin.close()

    async def aclose(self) -> None:
        """:meth:`close` from async code."""
        await self._twin.aclose()

    async def asession(self) -> AsyncSession:
        """The :class:`accord.aio.AsyncSession` this session writes as (``agent``).

        Its store is opened on first use over :attr:`store` (see
        ``AccordStore.astore`` in :mod:`accord.langgraph`: the same rules) and
        shares its sessions, so :attr:`store`'s ``session(agent)`` and this one
        carry one clock.
        """
        return (await self._twin.get()).session(self.agent)

    # --- the Session protocol ------------------------------------------------------------

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The conversation, oldest first; with ``limit``, only the latest ``limit`` items."""
        effective = resolve_session_limit(limit, self.session_settings)
        items, _ = await self._aread()
        if effective is None:
            return items
        return items[-effective:] if effective > 0 else []

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` (in order, together) to the conversation."""
        if not items:
            return
        new = [dict(item) for item in items]
        session = await self.asession()
        await session.update(self.key, lambda old: [*(old or []), *new], retries=self.retries)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the latest item, or None if the conversation is empty."""
        session = await self.asession()
        for _ in range(self.retries + 1):
            items, version = await self._aread()
            if not items:
                return None
            try:
                await session.write(self.key, items[:-1], expect=version)
            except Conflict:
                continue
            popped: TResponseInputItem = items[-1]
            return popped
        raise _contended(self.key, self.retries)

    async def clear_session(self) -> None:
        """Remove every item of the conversation."""
        session = await self.asession()
        for _ in range(self.retries + 1):
            _, version = await self._aread()
            if version == 0:
                return
            try:
                # Against the version read, not blind: a clear that raced an
                # append removes exactly what it saw, and the history stays clean.
                await session.delete(self.key, expect=version)
                return
            except Conflict:
                continue
        raise _contended(self.key, self.retries)

    # --- implementation ---------------------------------------------------------------------

    def _items(self) -> list[TResponseInputItem]:
        # The conversation read from sync code (the session's sync twin).
        try:
            doc = self._session.read(self.key)
        except NotFound:
            return []
        return _conversation(self.key, doc.value)

    async def _aread(self) -> tuple[list[Any], int]:
        try:
            doc = await (await self.asession()).read(self.key)
        except NotFound:
            return [], 0
        return _conversation(self.key, doc.value), doc.version


def _conversation(key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidValue(
            f"{key} holds {type(value).__name__} data, not a conversation (a JSON "
            "list). Something other than AccordSession wrote it; use another session id "
            "or prefix.",
            key=key,
        )
    return value


def _contended(key: str, retries: int) -> AccordError:
    from .errors import RetriesExhausted

    return RetriesExhausted(
        f"{key} changed under every one of {retries + 1} attempts; other runs are writing this "
        "session continuously. Retry later, or raise retries=.",
        key=key,
    )
