"""A check split between processes: each checks a share of the keys; merge.

Every process reads the whole history file (parsing is repeated; a third of
the work) and checks the keys of its shard; :func:`merge_results` joins the
shards' findings into one :class:`CheckResult`, the same as one process
would have found.
"""

from __future__ import annotations

import json
import os

from .format import is_foreign
from .native import WINDOW_REVISIONS, WINDOW_VERSIONS, notes
from .result import ANOMALY_NAMES, MAX_REPORTED, Anomaly, CheckResult
from .scan import check_shard


def check_parallel(path: str | os.PathLike[str], lenient: bool, workers: int) -> CheckResult:
    """Check ``path`` with ``workers`` processes, one share of the keys each, and merge."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # A foreign history is checked whole, in this process (one shard).
    with open(path, "rb") as handle:
        for raw in handle:
            if raw.strip():
                try:
                    first = json.loads(raw)
                except ValueError:
                    first = None
                if isinstance(first, dict) and is_foreign(first):
                    return check_shard(path, lenient, None, 0, 1)[0]
                break
    pool = ProcessPoolExecutor(max_workers=workers - 1, mp_context=mp.get_context("spawn"))
    try:
        futures = [
            pool.submit(check_shard, os.fspath(path), lenient, None, i, workers)
            for i in range(1, workers)
        ]
        parts = [check_shard(path, lenient, None, 0, workers)]
        parts += [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return merge_results(parts)


def merge_results(parts: list[tuple[CheckResult, int, bool]]) -> CheckResult:
    """One result from the shards' results (every shard read every event)."""
    head = parts[0][0]
    out = CheckResult(format=head.format)
    out.events, out.agents = head.events, head.agents
    out.skipped, out.problems = head.skipped, head.problems
    out.counts = dict.fromkeys(ANOMALY_NAMES, 0)
    out.unknown_counts = dict.fromkeys(ANOMALY_NAMES, 0)
    lost: int | None = 0
    anomalies: list[Anomaly] = []
    for result, _, _ in parts:
        out.keys += result.keys
        out.writes += result.writes
        for name in ANOMALY_NAMES:
            out.counts[name] += result.counts.get(name, 0)
            out.unknown_counts[name] += result.unknown_counts.get(name, 0)
        anomalies += result.anomalies
        out.unknown += result.unknown
        lost = None if lost is None or result.lost_writes is None else lost + result.lost_writes
    anomalies.sort(key=lambda a: a.events[-1].get("rev") or 0 if a.events else 0)
    kept: dict[str, int] = {}
    for a in anomalies:
        kept[a.name] = kept.get(a.name, 0) + 1
        if kept[a.name] <= MAX_REPORTED:
            out.anomalies.append(a)
    out.lost_writes = lost
    out.notes = notes(
        sum(g for _, g, _ in parts),
        any(x for _, _, x in parts),
        out.counts,
        WINDOW_VERSIONS,
        WINDOW_REVISIONS,
        MAX_REPORTED,
    )
    return out
