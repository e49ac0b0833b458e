"""The manifest (accord.toml) and its enforcement.

``load_manifest(path)`` reads and validates a manifest (see
:mod:`accord.policy.manifest`); ``load_policy(path)`` wraps it in the
:class:`Policy` that ``accord.open(url, manifest=path)`` installs on a store
(see :mod:`accord.policy.enforce`). Resource keys that are glob patterns
are matched in :mod:`accord.policy.patterns`. The plan (classification and
recommendation) lives in :mod:`accord.plan`.
"""

from __future__ import annotations

from .enforce import Policy, load_policy
from .manifest import (
    HINTS,
    STRATEGIES,
    Manifest,
    Resource,
    Who,
    load_manifest,
    parse_manifest,
)
from .patterns import patterns_overlap

__all__ = [
    "HINTS",
    "STRATEGIES",
    "Manifest",
    "Policy",
    "Resource",
    "Who",
    "load_manifest",
    "load_policy",
    "parse_manifest",
    "patterns_overlap",
]
