"""The conformance suite on both faces: ``face`` is ``sync`` or ``async``.

Every test here asks for ``store`` / ``open_store`` and runs once per
backend and face. On the async face the store is an ``accord.aio``
:class:`~accord.aio.AsyncStore` driven through ``tests/aio_driver.py`` (the
same calls, awaited on an event loop in a private thread), so the tests are
written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import accord
from tests.aio_driver import Loop, Proxy
from tests.conftest import _postgres_schema_url

FACES = ["sync", "async"]


@pytest.fixture(params=FACES)
def face(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(
    backend_name: str, face: str, tmp_path: Path
) -> Iterator[Callable[..., accord.Store]]:
    """Open (possibly several) stores on one fresh backend, on ``face``.

    For memory, every call shares one in-process backend; for sqlite one
    file; for postgresql one schema. Each store is closed at the end.
    """
    opened: list[Any] = []
    cleanup: list[Callable[[], None]] = []
    shared: dict[str, Any] = {}
    loop = Loop() if face == "async" else None
    if backend_name == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    elif backend_name == "postgresql":
        url, drop = _postgres_schema_url()
        cleanup.append(drop)
    else:
        url = "memory://"

    def factory(**kwargs: Any) -> Any:
        manifest = kwargs.pop("manifest", None) if backend_name == "memory" else None
        if backend_name == "memory":
            from accord.backends.memory import MemoryBackend

            if "backend" not in shared:
                shared["backend"] = MemoryBackend(clock=kwargs.pop("clock", None))
            else:
                kwargs.pop("clock", None)
        store: Any
        if loop is None:
            if backend_name == "memory":
                from accord.store import Store

                store = Store(shared["backend"], **kwargs)
            else:
                store = accord.open(url, **kwargs)
        else:
            from accord import aio
            from accord.backends.thread import ThreadBackend

            if backend_name == "memory":
                store = Proxy(aio.AsyncStore(ThreadBackend(shared["backend"]), **kwargs), loop)
            else:
                store = Proxy(loop.run(aio.open(url, **kwargs)), loop)
        if manifest is not None:
            from accord.policy import load_policy

            policy = load_policy(manifest)
            policy.install(store._target if isinstance(store, Proxy) else store)
        opened.append(store)
        return store

    factory.url = url  # type: ignore[attr-defined]
    factory.face = face  # type: ignore[attr-defined]
    yield factory
    for store in opened:
        store.close()
    if loop is not None:
        loop.close()
    for fn in cleanup:
        fn()


@pytest.fixture
def store(open_store: Callable[..., accord.Store]) -> accord.Store:
    return open_store()
