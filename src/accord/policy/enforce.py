"""Enforcement: a store opened with a manifest refuses what it does not allow.

:class:`Policy` installs one hook on the store (``Store.add_hook``); every
session operation passes it before it touches the store, so a refused
operation changes nothing and leaves no history. The rules, by the strategy
of the resource that governs the key (see :meth:`Manifest.resource_for`):

==============  =============================================================
every strategy  writes and deletes only by the resource's writers
read_only       no writes at all
owner           only the owner writes (others get :class:`NotWriter`); it may
                write without ``expect``
queue           only the writer writes (others get :class:`NotWriter`: submit)
optimistic      every write names ``expect=``; ``force=True`` is refused
lease           every write carries ``lease=``
branch          a writer may create the key (the base every branch forks from:
                ``expect=0``, or a write with no guard); after that no direct
                writes: fork, write the branch, merge
==============  =============================================================

Reads are never refused (a read cannot lose an update). Keys no resource
covers follow the store's defaults. When the manifest declares agents, a
session for any other agent name is refused.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import (
    NotWriter,
    PolicyViolation,
    PreconditionFailed,
    UsageError,
    argument,
    call,
    option,
    var,
)
from .manifest import Manifest, Resource, load_manifest

if TYPE_CHECKING:
    from .._core.write import Hook, Operation


class Hookable(Protocol):
    """What :meth:`Policy.install` needs of a store (``Store`` and
    ``AsyncStore`` both are): a ``policy`` to set and ``add_hook``."""

    policy: Any

    def add_hook(self, hook: Hook) -> None: ...


_WRITES = frozenset({"write", "delete"})
_WRITER_ONLY = frozenset({"accept", "reject", "requests", "serve", "claim"})
_MERGES = frozenset({"merge", "commit"})
_FORKS = frozenset({"fork"})


class Policy:
    """The run-time side of a manifest. Get one with :func:`load_policy`.

    ``store_url`` is the manifest's ``[store] url`` (or None). Call
    :meth:`install` once on a store; the store then asks :meth:`check_agent`
    for every new session and runs :meth:`check` before every operation.
    """

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest

    def __repr__(self) -> str:
        return f"Policy({self.manifest.name!r}, {len(self.manifest.resources)} resources)"

    @property
    def store_url(self) -> str | None:
        """The ``[store] url`` of the manifest, or None."""
        return self.manifest.store_url

    def install(self, store: Hookable) -> None:
        """Enforce this policy on ``store`` (sets ``store.policy`` and a hook)."""
        store.policy = self
        store.add_hook(self.check)

    def resource_for(self, key: str) -> Resource | None:
        """The resource governing ``key`` (exact beats pattern), or None."""
        return self.manifest.resource_for(key)

    def writer_for(self, key: str) -> str | None:
        """The named writer of ``key`` if its resource is owner or queue, else None.

        The queue strategy uses this as the key's writer instead of letting
        the first caller of ``requests()`` claim the role.
        """
        resource = self.manifest.resource_for(key)
        if resource is None or resource.strategy not in ("owner", "queue"):
            return None
        return resource.writer

    def strategy_for(self, key: str) -> str | None:
        """The strategy enforced on ``key`` (declared, or implied), or None."""
        resource = self.manifest.resource_for(key)
        return None if resource is None else _effective(resource)

    def check_agent(self, agent: str) -> None:
        """Refuse ``agent`` with :class:`PolicyViolation` if the manifest lists agents
        and this is not one of them."""
        agents = self.manifest.agents
        if agents and agent not in agents:
            raise PolicyViolation(
                f"Agent {agent!r} is not declared in {self.manifest.name} (declared: "
                f"{', '.join(agents)}). Run as one of them ({call('store.session', var('name'))}), "
                f"or add [agents.{agent}] to the manifest.",
                agent=agent,
            )

    def check(self, operation: Operation) -> None:
        """The store hook: raise if the manifest does not allow ``operation``.

        Sets ``operation.allow_blind`` for an owner's (or queue writer's) own
        writes, which need no ``expect``: nobody else can write the key.
        """
        agent = operation.agent
        self.check_agent(agent)
        op = operation.op
        if op == "read":
            return
        key = operation.key
        resource = self.manifest.resource_for(key)
        if resource is None:
            return
        strategy = _effective(resource)
        if op in _WRITES:
            self._check_write(operation, resource, strategy)
        elif op == "submit":
            self._check_submit(operation, resource, strategy)
        elif op in _WRITER_ONLY:
            if strategy == "queue" and agent not in resource.writers:
                raise NotWriter(
                    f"{agent} is not the writer of {key}: {resource.writer} is, per "
                    f"{self.manifest.name}. Submit your change with "
                    f"{call('submit', key, var('change'))} instead.",
                    key=key,
                    writer=resource.writer,
                )
        elif op in _FORKS or op in _MERGES:
            if strategy == "read_only":
                raise self._read_only(key, resource)
            if resource.writers and agent not in resource.writers:
                verb = "fork" if op in _FORKS else "merge into"
                raise self._not_writer(agent, key, resource, strategy, verb=verb)

    # --- the rules ------------------------------------------------------------

    def _check_write(self, operation: Operation, resource: Resource, strategy: str | None) -> None:
        agent, key, info = operation.agent, operation.key, operation.info
        verb = "delete" if operation.op == "delete" else "write"
        if strategy == "read_only":
            raise self._read_only(key, resource)
        if strategy == "queue" and agent not in resource.writers:
            raise NotWriter(
                f"{agent} may not {verb} {key}: it is a queue resource in {self.manifest.name}, "
                f"written only by its queue writer {resource.writer!r}. Submit your change "
                f"instead: {call('submit', key, var('change'))}; {resource.writer!r} applies "
                f"requests in order ({call('request.wait', timeout=var('seconds'))} gives the "
                "outcome).",
                key=key,
                writer=resource.writer,
            )
        if agent not in resource.writers:
            raise self._not_writer(agent, key, resource, strategy, verb=verb)
        if strategy in ("owner", "queue"):
            # One writer cannot race itself: its writes need no expect.
            operation.allow_blind = True
        elif strategy == "optimistic":
            if info.get("force") or info.get("expect") is None:
                how = option("force") if info.get("force") else "no expected version"
                raise PolicyViolation(
                    f"Refusing {agent}'s {verb} of {key} with {how}: it is an optimistic resource "
                    f"in {self.manifest.name}, so every {verb} names the version it builds on. "
                    f"Read it and {verb} with {option('expect', var('that version'))} "
                    f"({option('expect', 0)} to create), or use "
                    f"{call('update', key, var('fn'))}, which retries on conflicts.",
                    key=key,
                    strategy=strategy,
                )
        elif strategy == "lease":
            if info.get("lease") is None:
                raise PolicyViolation(
                    f"Refusing {agent}'s {verb} of {key} without a lease: it is a lease resource "
                    f"in {self.manifest.name}. Take its lease first "
                    f"({call('session.acquire', key)}) and {verb} under it "
                    f"({call(f'session.{verb}', key, var('...'), lease=var('lease'))}).",
                    key=key,
                    strategy=strategy,
                )
        elif strategy == "branch":
            # Its writers create the base the branches fork from. Only a
            # create: expect=0, or no guard at all (a write that only
            # creates); the store refuses either if the key exists, in the
            # write's own transaction. force and lease could overwrite.
            creating = (
                operation.op == "write"
                and not info.get("force")
                and info.get("lease") is None
                and info.get("expect") in (None, 0)
            )
            if creating:
                rec = operation.session.store.backend.get(key)
                if rec is None or rec.deleted:
                    return
            exists = " It exists already." if creating else ""
            raise PolicyViolation(
                f"Refusing {agent}'s direct {verb} of {key}: it is a branch resource in "
                f"{self.manifest.name}, where each agent works on an isolated copy.{exists} Its "
                f"writers create it once ({call('write', key, var('value'), expect=0)}); after "
                f"that, fork it ({call('session.fork', key)}), write to your branch "
                f"({call('branch.write', var('value'))}), and merge the branches at synthesis "
                f"({call('store.merge', key, var('branches'))}, then commit the result).",
                key=key,
                strategy=strategy,
            )

    def _check_submit(self, operation: Operation, resource: Resource, strategy: str | None) -> None:
        agent, key = operation.agent, operation.key
        if strategy not in (None, "queue"):
            raise PolicyViolation(
                f"Refusing {agent}'s submit to {key}: it is a {strategy} resource in "
                f"{self.manifest.name}, with no queue writer to apply requests. "
                + _how_to_write(strategy, key),
                key=key,
                strategy=strategy,
            )
        if (
            resource.submitters
            and agent not in resource.submitters
            and (agent not in resource.writers)
        ):
            raise PolicyViolation(
                f"{agent} may not submit changes to {key}: {self.manifest.name} lets "
                f"{resource.submitters.describe()} submit. Ask one of them, or add {agent} to "
                "submitters.",
                key=key,
            )

    def _read_only(self, key: str, resource: Resource) -> PolicyViolation:
        pattern = f" (resource {resource.key!r})" if resource.key != key else ""
        return PolicyViolation(
            f"{key} is read_only in {self.manifest.name}{pattern}: agents only read it. "
            "Change it outside the agents' run, or declare writers and a strategy for it in the "
            "manifest.",
            key=key,
            strategy="read_only",
        )

    def _not_writer(
        self, agent: str, key: str, resource: Resource, strategy: str | None, *, verb: str
    ) -> PreconditionFailed:
        pattern = f"resource {resource.key!r}, " if resource.key != key else ""
        if strategy == "owner":
            # The strategy's own error: like a queue key, the key has one
            # writer, so the caller learns who it is, not just "refused".
            return NotWriter(
                f"{agent} may not {verb} {key}: it is owned by {resource.writer} in "
                f"{self.manifest.name} ({pattern}strategy owner), and only the owner writes it. "
                f"Ask {resource.writer} to change it; if others must change it routinely, make "
                f"it a queue resource (writer = {resource.writer!r}, submitters = [...]) and "
                f"submit changes with {call('session.submit', key, var('change'))}.",
                key=key,
                writer=resource.writer,
            )
        return PolicyViolation(
            f"{agent} may not {verb} {key}: {self.manifest.name} ({pattern}strategy "
            f"{strategy or 'not declared'}) names its writers: {resource.writers.describe()}. "
            f"Leave it to them, or add {agent} to the resource's writers in the manifest.",
            key=key,
        )


def _effective(resource: Resource) -> str | None:
    """The declared strategy, or the one the access class implies (read_only, owner)."""
    if resource.strategy is not None:
        return resource.strategy
    if not resource.writers and not resource.submitters:
        return "read_only"
    if resource.writer is not None and not resource.submitters:
        return "owner"
    return None


def _how_to_write(strategy: str, key: str) -> str:
    return {
        "read_only": "Nobody writes it.",
        "owner": "Ask its owner to change it.",
        "optimistic": f"Write it with {option('expect', var('the version you read'))}, or use "
        f"{call('update', key, var('fn'))}.",
        "lease": f"Take its lease ({call('session.acquire', key)}) and write under it "
        f"({call('session.write', key, var('value'), lease=var('lease'))}).",
        "branch": f"Fork it ({call('session.fork', key)}) and write your branch.",
    }.get(strategy, "")


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Load the manifest at ``path`` and return its :class:`Policy`.

    Raises :class:`ManifestError` for a missing, malformed or inconsistent
    manifest, before any store is opened.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"{argument('manifest')} takes the path of an accord.toml, not {path!r}.")
    return Policy(load_manifest(path))
