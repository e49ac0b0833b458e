"""The shared-state design protocol: classify every resource, pick a strategy.

The protocol, as :func:`make_plan` applies it to a manifest:

1. list every resource that more than one agent reads or writes;
2. classify its access: **read-only** (nobody writes), **one writer**, or
   **many writers** (several writers, or one writer with submitters);
3. choose the simplest strategy that works: read-only and one-writer
   resources need nothing (``read_only``, ``owner``). For many writers:
   isolated copies (``branch``) when agents need not build on each other's
   work and the value merges; a ``queue`` for an author with contributors;
   ``optimistic`` for low conflict; a ``lease`` for high conflict with long
   reasoning between read and write;
4. make writes idempotent (``idempotency_key=``) wherever a retry can repeat.

A declared strategy is kept (and compared with the recommendation); a
missing one is recommended. :meth:`Plan.violations` is what
``accord plan --check`` gates on (exit 6).

:func:`access_from_history` builds the same table from a recorded history
(accord's own JSONL, or the foreign format of ``docs/history.md``), and
:func:`manifest_from_history` turns it into a starting manifest.

One job a module: classification and recommendation in
:mod:`accord.plan._classify`; what a history shows about each key in
:mod:`accord.plan._access`; the plan of a manifest and its violations in
:mod:`accord.plan._plan`; the plan and a starting manifest from a history
alone in :mod:`accord.plan._from_history`; writing a manifest as TOML in
:mod:`accord.plan._write`; the table for people in
:mod:`accord.plan._render`; the demo's own plan in :mod:`accord.plan._demo`.
Import from :mod:`accord.plan`; the modules are private.
"""

from __future__ import annotations

from ._access import Observed, access_from_history, read_history
from ._classify import COSTS, FITS, MANY_WRITERS, ONE_WRITER, READ_ONLY, classify, recommend
from ._demo import DEMO_MANIFEST, demo_plan, render_demo_plan
from ._from_history import manifest_from_history, plan_history
from ._plan import Plan, PlanRow, Violation, make_plan, plan_file
from ._render import WIDE, plan_table, render_plan
from ._write import manifest_to_toml, write_manifest

__all__ = [
    "COSTS",
    "DEMO_MANIFEST",
    "FITS",
    "MANY_WRITERS",
    "ONE_WRITER",
    "READ_ONLY",
    "WIDE",
    "Observed",
    "Plan",
    "PlanRow",
    "Violation",
    "access_from_history",
    "classify",
    "demo_plan",
    "make_plan",
    "manifest_from_history",
    "manifest_to_toml",
    "plan_file",
    "plan_history",
    "plan_table",
    "read_history",
    "recommend",
    "render_demo_plan",
    "render_plan",
    "write_manifest",
]
