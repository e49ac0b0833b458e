"""Which agent is running: the one context variable the explorer's marks read.

Kept apart from the scheduler so that ``import accord`` (which exports
``think`` and ``tool_call``) does not load the explorer.
"""

from __future__ import annotations

import contextvars
from typing import Any

CURRENT: contextvars.ContextVar[Any] = contextvars.ContextVar("accord_explore_agent", default=None)
"""The :class:`~accord.explorer.Agent` whose code runs, None outside an exploration."""
