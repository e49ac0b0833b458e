"""``accord mcp --http`` with a trap for tests/test_mcp_crash.py: armed, it dies by
SIGKILL in the crash window of one tool.

The test writes a tool's name to the file that ``ACCORD_TEST_CRASH_ARM`` names.
The next call of that tool with an idempotency_key runs and commits its
operation; then, just before the server would keep the result for the key
(:func:`accord.replay.finish`), the process SIGKILLs itself: the window
between the commit and the answer, made certain rather than left to timing.
Claims last 2 s instead of 10, so that the retries after a crash wait less.
Run as ``python -m tests.mcp_crash_server mcp --http ...`` (the CLI's arguments).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from accord import replay
from accord.cli import main

_ARM = os.environ["ACCORD_TEST_CRASH_ARM"]
_finish = replay.finish


def _armed_for(operation: str | None) -> bool:
    if operation is None:
        return False
    try:
        with open(_ARM, encoding="utf-8") as armed:
            tool = armed.read().strip()
    except FileNotFoundError:
        return False
    if not tool or operation.split(" ", 1)[0] != tool:
        return False
    try:
        os.unlink(_ARM)
    except FileNotFoundError:
        return False  # a call in another thread took it
    return True


def finish(store: Any, claim: Any, operation: str | None, answer: Any) -> None:
    if answer is not None and _armed_for(operation):
        os.kill(os.getpid(), signal.SIGKILL)
    _finish(store, claim, operation, answer)


replay.finish = finish
replay.IN_FLIGHT = 2.0
main()
