"""Watch: every committed change of a key, or of the keys under a prefix.

``session.watch(target, since)`` yields one :class:`WatchEvent` per write or
delete of the watched keys committed after revision ``since``, in revision
order: none skipped, none twice. Each event carries its ``revision``, so a
watcher that stops (or crashes) resumes with ``since=event.revision``.

The parts live apart; this module names them in one place:

* :mod:`accord._core.watch`, without I/O: :class:`WatchEvent`,
  :class:`WatchState` (what to read and what to wait on, the read cursor and
  the resume rule, the filter), :func:`is_change`, :func:`backoff` and
  :func:`unavailable`;
* :mod:`accord._watch_async`, the loop that reads and waits, written once as
  async code (``AsyncSession.watch``); :mod:`accord._watch`, the sync loop
  generated from it (:func:`watch`: ``Session.watch`` and ``accord watch``).
"""

from __future__ import annotations

from ._core.watch import *  # noqa: F403 (its __all__: the I/O-free names)
from ._core.watch import __all__ as _IO_FREE
from ._watch import watch

__all__ = [*_IO_FREE, "watch"]
