"""tools/async_to_sync.py: the sync face is generated from the async source, and CI checks it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "async_to_sync.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("async_to_sync", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOURCE = '''\
"""Talks to an :class:`AsyncStore`."""

from __future__ import annotations

import asyncio


class AsyncThing:
    async def __aenter__(self) -> AsyncThing:
        return self

    async def run(self, store: AsyncStore) -> int:
        # Wait a little, then read (an AsyncStore call).
        await asyncio.sleep(0.01)
        async with store.lock() as held:
            async for x in store.items():
                print(x, held)
        if True:  # ASYNC
            return await store.count_in_thread()
        else:
            return store.count()
'''

EXPECTED = '''\
"""Talks to an :class:`Store`."""

from __future__ import annotations

import time


class Thing:
    def __enter__(self) -> Thing:
        return self

    def run(self, store: Store) -> int:
        # Wait a little, then read (an Store call).
        time.sleep(0.01)
        with store.lock() as held:
            for x in store.items():
                print(x, held)
        return store.count()
'''


def test_the_rewrite() -> None:
    tool = _tool()
    tool.NAMES["AsyncThing"] = "Thing"
    out = tool.convert(SOURCE, "thing_async.py")
    header, _, body = out.partition('"""')
    assert "generated from src/accord/thing_async.py" in header and "do not edit" in header
    assert '"""' + body == EXPECTED


def test_the_generated_modules_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(TOOL), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_fails_on_a_stale_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _tool()
    source, target = tool.FILES[0]
    src = tmp_path / "src" / "accord"
    src.mkdir(parents=True)
    (src / source).write_text((tool.SRC / source).read_text(encoding="utf-8"), encoding="utf-8")
    (src / target).write_text("# edited by hand\n", encoding="utf-8")
    tool.SRC = src
    tool.FILES = [(source, target)]
    monkeypatch.setattr(sys, "argv", ["async_to_sync.py", "--check"])
    assert tool.main() == 1
    monkeypatch.setattr(sys, "argv", ["async_to_sync.py"])
    assert tool.main() == 0
    assert (src / target).read_text(encoding="utf-8").startswith("# WARNING: generated from")
