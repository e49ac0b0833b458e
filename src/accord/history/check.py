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

One pass over the history (:mod:`accord.history.scan`) gives accord
histories to the one-pass checker in :mod:`accord.history.native`, and
foreign histories (no versions) to :mod:`accord.history.infer`, which
infers each key's version order; with ``workers``, the keys are split
between processes and the results merged (:mod:`accord.history.parallel`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..errors import UsageError, argument
from .linearizable import DEFAULT_BUDGET
from .parallel import check_parallel
from .result import ANOMALY_NAMES, Anomaly, CheckResult
from .scan import check_shard

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
        return check_parallel(events, lenient, workers)
    return check_shard(events, lenient, on_event, 0, 1, search)[0]
