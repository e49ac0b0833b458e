"""One pass over a history: hand it to the checker for its shape.

:func:`check_shard` reads a history once and feeds it to the one-pass
checker of accord histories (:mod:`accord.history.native`), limited to one
shard's keys when the check is split between processes, or, for a foreign
history (recognised by its first event), reads it whole and infers each
key's version order (:mod:`accord.history.infer`), then searches for a
linearization if asked (:mod:`accord.history.linearizable`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from ..errors import HistoryFormatError, UsageError, argument, call, option, var
from .foreign import read_foreign
from .format import EventStream, is_foreign
from .infer import check_foreign
from .linearizable import check_linearizable
from .native import NativeChecker
from .result import CheckResult


def check_shard(
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


def _chain(first: tuple[int, dict[str, Any]], rest: Any) -> Any:
    yield first
    yield from rest
