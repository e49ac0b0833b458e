"""Processes appending to one AccordSession (importable by spawned children)."""

from __future__ import annotations

import asyncio
from typing import Any

import accord


def append_worker(url: str, index: int, turns: int, barrier: Any, results: Any) -> None:
    """Append ``turns`` two-item turns to the session "shared", as its own process."""
    from accord.agents_sdk import AccordSession

    with accord.open(url) as store:
        session = AccordSession("shared", store, agent=f"proc-{index}")
        barrier.wait(timeout=60)

        async def go() -> None:
            for turn in range(turns):
                await session.add_items([
                    {"role": "user", "content": f"p{index} t{turn} in"},
                    {"role": "assistant", "content": f"p{index} t{turn} out"},
                ])

        asyncio.run(go())
    results.put(index)
