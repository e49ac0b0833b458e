"""Classify a resource's access and recommend the simplest strategy that works.

Steps 2 and 3 of the protocol (see :mod:`accord.plan`): :func:`classify`
names the access class (read-only, one writer, many writers) and
:func:`recommend` picks a strategy from the class and the resource's hints,
with the reason; :data:`COSTS` and :data:`FITS` say what each strategy costs
and when it is the simplest.
"""

from __future__ import annotations

from ..policy.manifest import Resource

READ_ONLY = "read-only"
ONE_WRITER = "one writer"
MANY_WRITERS = "many writers"

COSTS: dict[str, str] = {
    "read_only": "none: reads never conflict",
    "owner": "none: one writer needs no coordination; others cannot write it",
    "branch": "cheapest: no waiting, no retries; merge at the end, conflicts reported then",
    "optimistic": "no waiting; retries grow with conflicts (each redoes the agent's work)",
    "queue": "one writer's latency: contributors wait for the writer to apply their changes",
    "lease": "waiting for the holder, lock management (TTL, renewal), deadlock risk",
}
"""The cost of each strategy in one line."""

FITS: dict[str, str] = {
    "read_only": "nobody writes it",
    "owner": "one agent writes it",
    "branch": "agents need not build on each other's work, and the value merges",
    "optimistic": "several writers, conflicts are rare",
    "queue": "one author, others contribute changes",
    "lease": "conflicts are frequent and each change takes long reasoning",
}
"""When each strategy is the simplest that works."""

SIMPLICITY = {name: rank for rank, name in enumerate(
    ("read_only", "owner", "branch", "optimistic", "queue", "lease")
)}


def classify(resource: Resource) -> str:
    """The access class of ``resource``: read-only, one writer, or many writers.

    Submitters count as writers of the class: a writer with contributors is
    a many-writer resource (its writer serialises their changes).
    """
    writers = resource.writers.count()
    if writers == 0 and not resource.submitters:
        return READ_ONLY
    if writers == 1 and not resource.submitters:
        return ONE_WRITER
    return MANY_WRITERS


def recommend(resource: Resource) -> tuple[str, str]:
    """The simplest strategy that works for ``resource``, and why.

    Uses only the access class and the hints; a declared strategy is
    ignored here (:func:`make_plan` compares the two).
    """
    access = classify(resource)
    if access == READ_ONLY:
        return "read_only", "nobody writes it: readers need nothing"
    if access == ONE_WRITER:
        return "owner", f"one writer ({resource.writers.describe()}): nothing can race it"
    if resource.submitters and resource.writer is not None:
        return "queue", (
            f"an author ({resource.writer}) with contributors "
            f"({resource.submitters.describe()}): they submit, the author applies in order"
        )
    if resource.builds_on is False and resource.mergeable is True:
        return "branch", (
            "agents need not build on each other's work and the value merges: isolated copies, "
            "merged at synthesis"
        )
    after = ""
    if resource.builds_on is None and resource.mergeable is not False:
        after = (
            "; if agents need not see each other's changes and the value merges, set "
            "builds_on = false, mergeable = true for isolated copies (cheaper)"
        )
    elif resource.builds_on is not False:
        after = "; agents build on each other's work, so isolated copies would not do"
    elif resource.mergeable is False:
        after = "; the value does not merge, so isolated copies would end in conflicts"
    if resource.conflicts == "high":
        if resource.reasoning == "long":
            why = (
                "high conflict with long reasoning: a retry would throw that reasoning away, "
                "so writers wait their turn instead"
            )
            if resource.latency == "sensitive":
                why += (
                    " (writers cannot wait long: consider one author with a queue if there "
                    "is one)"
                )
            return "lease", why
        return "optimistic", (
            "high conflict but short changes: a retry is cheap (update retries on conflicts); if "
            "RetriesExhausted shows up, move to a lease or a queue" + after
        )
    if resource.conflicts in ("low", "medium"):
        return "optimistic", (
            f"{resource.conflicts} conflict: a retry now and then, nobody waits" + after
        )
    return "optimistic", (
        "conflict rate not stated: optimistic is the simplest safe choice for many writers, and "
        "conflicts show up as retries (set conflicts = \"high\" if they are frequent)" + after
    )
