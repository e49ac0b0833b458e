"""The race detector's entry point: :func:`check` a history and merge what was found.

:func:`check` reads a history (an ``accord export`` file, any JSONL file in
the documented format, a list of events, or a live :class:`accord.Store`),
hands it to the checker for its shape, and returns a :class:`CheckResult`
listing every anomaly with a stable name, the events involved and a plain
explanation in the style of Jepsen's Elle:

``lost-update``
    a committed write whose ``based_on`` is older than the version it
    replaced: it erased the writes in between without having seen them;
``concurrent-writes``
    two consecutive committed writes to one key whose vector clocks are
    concurrent (neither agent had seen the other's write): a race, even
    where nothing was lost this time;
``fenced-write-accepted``
    a write accepted under a lease token after that lease expired, was
    released, or a newer token was granted;
``duplicate-apply``
    one idempotency key, or one queue request, applied more than once;
``stale-read``
    a read that returned an older version than a write acknowledged before
    the read began.

accord histories go to the one-pass checker in :mod:`accord.history.native`
(split between processes by key with ``workers``); foreign histories (no
versions) to :mod:`accord.history.infer`, which infers each key's version
order.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable
from typing import Any

from ..errors import HistoryFormatError, UsageError, argument, call, option, var
from .foreign import read_foreign
from .format import EventStream, is_foreign
from .infer import check_foreign
from .linearizable import DEFAULT_BUDGET, check_linearizable
from .native import WINDOW_REVISIONS, WINDOW_VERSIONS, NativeChecker, notes
from .result import ANOMALY_NAMES, MAX_REPORTED, Anomaly, CheckResult

__all__ = ["ANOMALY_NAMES", "Anomaly", "CheckResult", "check"]


def check(
    events: Any,
    *,
    lenient: bool = False,
    on_event: Callable[[int, dict[str, Any]], None] | None = None,
    workers: int = 1,
    linearizable: bool = False,
    budget: int = DEFAULT_BUDGET,
) -> CheckResult:
    """Check a history for lost updates and races; return a :class:`CheckResult`.

    ``events`` is a path to a JSONL history (streamed, never loaded whole),
    an iterable of event dicts or :class:`accord.Event` objects, or a
    :class:`accord.Store`. Events must come in revision order, as
    ``accord export`` writes them. Foreign histories (no ``rev``; ``value``
    or ``hash`` with ``start`` and ``end`` times) are recognised by their
    first event and checked by inferring each key's version order.

    Raises :class:`accord.HistoryFormatError` for malformed input (the
    message names the line), unless ``lenient`` is true: then bad lines are
    skipped and counted in ``CheckResult.skipped``. An empty history is an
    error too: there is nothing to call clean. ``on_event(line, event)``, if
    given, sees every accepted event (the timeline uses it).

    ``workers`` (for an accord history file) splits the keys between that
    many processes: each reads the whole file and checks its share of the
    keys, and the results are merged (the findings are the same). It pays
    only on idle cores: parsing, which every process repeats, is a third of
    the work.

    ``linearizable`` (foreign histories only) also searches each key for an
    order of its operations that agrees with real time and with one
    register or append value (:mod:`accord.history.linearizable`); a key
    with none is the anomaly ``nonlinearizable``, and a key whose search
    takes more than ``budget`` steps is unknown. ``CheckResult.linearizable``
    then says True, False, or None (undecided).
    """
    if type(workers) is not int or workers < 1:
        raise UsageError(
            f"{argument('workers')} must be a number of processes >= 1, not {workers!r}."
        )
    if type(budget) is not int or budget < 1:
        raise UsageError(
            f"{argument('budget')} must be a number of search steps >= 1, not {budget!r} (the "
            "default is "
            f"{DEFAULT_BUDGET:,})."
        )
    search = budget if linearizable else None
    if (
        workers > 1
        and on_event is None
        and search is None
        and isinstance(events, (str, os.PathLike))
    ):
        return _check_parallel(events, lenient, workers)
    return _check_shard(events, lenient, on_event, 0, 1, search)[0]


def _check_shard(
    events: Any,
    lenient: bool,
    on_event: Callable[[int, dict[str, Any]], None] | None,
    shard: int,
    shards: int,
    search: int | None = None,
) -> tuple[CheckResult, int, bool]:
    """Check the keys of ``shard`` (of ``shards``); returns (result, gaps, approximate).

    ``search``: the budget of the linearizability search, or None for none.
    """
    stream = EventStream(events, lenient=lenient)
    iterator = iter(stream)
    first: tuple[int, dict[str, Any]] | None = None
    for item in iterator:
        first = item
        break
    if first is None and stream.skipped:
        raise HistoryFormatError(
            f"{stream.name}: every line was malformed ({stream.skipped} skipped); there is "
            "nothing to check. The first problems: " + "; ".join(stream.problems[:3])
        )
    if first is None:
        raise HistoryFormatError(
            f"{stream.name} holds no events: there is nothing to check. Export a history with "
            f"{call('store.export_history', var('path'))} (open the store with "
            f"{option('record_reads')} to include reads)."
        )
    # The checker allocates no reference cycles, and the cyclic garbage
    # collector's full passes over the remembered versions would cost more
    # than the check itself on long histories: pause it for the pass.
    paused = gc.isenabled()
    gc.disable()
    try:
        result, gaps, approximate = _run(
            first, iterator, stream, on_event, shard, shards, search
        )
    finally:
        if paused:
            gc.enable()
    result.skipped = stream.skipped
    result.problems = stream.problems
    if result.events == 0:
        raise HistoryFormatError(
            f"{stream.name}: every line was malformed ({stream.skipped} skipped); there is "
            "nothing to check. The first problems: " + "; ".join(stream.problems[:3])
        )
    return result, gaps, approximate


def _run(
    first: tuple[int, dict[str, Any]],
    iterator: Any,
    stream: EventStream,
    on_event: Callable[[int, dict[str, Any]], None] | None,
    shard: int = 0,
    shards: int = 1,
    search: int | None = None,
) -> tuple[CheckResult, int, bool]:
    if is_foreign(first[1]):
        if shard:
            return CheckResult(format="foreign"), 0, False
        history = read_foreign(_chain(first, iterator), stream, on_event)
        result = check_foreign(history)
        if search is not None:
            check_linearizable(history, result, search)
        return result, 0, False
    if search is not None:
        raise UsageError(
            f"The linearizability search ({option('linearizable')}) reads foreign histories, "
            "whose lines give each operation's start and end; an accord history records each "
            "operation once, when it committed, and its store already orders every commit by "
            f"revision. Check it without {argument('linearizable')}."
        )
    native = NativeChecker(stream, shard=shard, shards=shards)
    feed = native.feed
    if on_event is None:
        feed(*first)
        for line, event in iterator:
            feed(line, event)
    else:
        for line, event in _chain(first, iterator):
            if feed(line, event):
                on_event(line, event)
    result = native.finish()
    return result, native.gaps, native.approximate


def _check_parallel(path: str | os.PathLike[str], lenient: bool, workers: int) -> CheckResult:
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
                    return _check_shard(path, lenient, None, 0, 1)[0]
                break
    pool = ProcessPoolExecutor(max_workers=workers - 1, mp_context=mp.get_context("spawn"))
    try:
        futures = [
            pool.submit(_check_shard, os.fspath(path), lenient, None, i, workers)
            for i in range(1, workers)
        ]
        parts = [_check_shard(path, lenient, None, 0, workers)]
        parts += [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return _merge(parts)


def _merge(parts: list[tuple[CheckResult, int, bool]]) -> CheckResult:
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


def _chain(first: tuple[int, dict[str, Any]], rest: Any) -> Any:
    yield first
    yield from rest
