"""``accord serve`` with a trap for tests/test_http_recover_crash.py: armed, it dies by
SIGKILL in the Idempotency-Key crash window of one route.

The test writes a pattern (``fnmatch``, over ``"METHOD /path"``, such as
``POST /v1/requests/*/accept``) to the file that ``ACCORD_TEST_CRASH_ARM`` names.
The next request matching it with an Idempotency-Key runs and commits its
operation; then, just before the server would keep its response for the key
(:func:`accord.replay.finish`), the process SIGKILLs itself: the window between
the commit and the answer, made certain rather than left to timing. Only a
success arms the trap (a refused request applied nothing). Claims last 2 s
instead of 10, so that the retries after a crash wait less. Run as
``python -m tests.http_crash_server serve ...`` (the CLI's arguments).
"""

from __future__ import annotations

import fnmatch
import os
import signal
from typing import Any

from accord import replay
from accord.cli import main
from accord.http import _idempotency as idem

_ARM = os.environ["ACCORD_TEST_CRASH_ARM"]
_finish = replay.finish


def _armed_for(operation: str | None) -> bool:
    if operation is None:
        return False
    try:
        with open(_ARM, encoding="utf-8") as armed:
            pattern = armed.read().strip()
    except FileNotFoundError:
        return False
    if not pattern or not fnmatch.fnmatchcase(operation, pattern):
        return False
    try:
        os.unlink(_ARM)
    except FileNotFoundError:
        return False  # a request in another thread took it
    return True


def finish(store: Any, claim: Any, operation: str | None, answer: Any) -> None:
    if answer is not None and int(answer.get("status", 500)) < 300 and _armed_for(operation):
        os.kill(os.getpid(), signal.SIGKILL)
    _finish(store, claim, operation, answer)


replay.finish = finish
replay.IN_FLIGHT = 2.0
idem.IN_FLIGHT = 2.0
main()
