"""Histories: read them, check them for races, infer foreign ones, draw them.

``check`` (the race detector) lives in :mod:`accord.history.check`; reading
files in :mod:`accord.history.format`; version-order inference for foreign
histories in :mod:`accord.history.infer`; the OpenTelemetry importer in
:mod:`accord.history.otel`; the timeline picture in
:mod:`accord.history.timeline`.
"""

from __future__ import annotations

from .check import ANOMALY_NAMES, Anomaly, CheckResult, check

__all__ = ["ANOMALY_NAMES", "Anomaly", "CheckResult", "check"]
