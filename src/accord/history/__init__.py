"""Histories: read them, check them for races, infer foreign ones, draw them.

One job a module: reading files in :mod:`accord.history.format`; what a
check finds (:class:`Anomaly`, :class:`CheckResult`) in
:mod:`accord.history.result`; the entry point :func:`check` in
:mod:`accord.history.check`; one pass over a history, handed to the checker
for its shape, in :mod:`accord.history.scan`; a check split between
processes in :mod:`accord.history.parallel`; the one-pass checker of accord
histories in :mod:`accord.history.native`; reading foreign operations (read, write, cas,
append; outcome ok, fail, info) in :mod:`accord.history.foreign`;
version-order inference for them in :mod:`accord.history.infer`; the
linearizability search in :mod:`accord.history.linearizable`; the
OpenTelemetry importer in :mod:`accord.history.otel`; the timeline picture
in :mod:`accord.history.timeline`; the ShiViz log in
:mod:`accord.history.shiviz`.
"""

from __future__ import annotations

from .check import check
from .result import ANOMALY_NAMES, Anomaly, CheckResult

__all__ = ["ANOMALY_NAMES", "Anomaly", "CheckResult", "check"]
