"""The conformance suite on both faces: ``face`` is ``sync``, ``async`` or ``native``.

Every test here asks for ``store`` / ``open_store`` and runs once per
backend and face. On the async face the store is an ``accord.aio``
:class:`~accord.aio.AsyncStore` driven through ``tests/aio_driver.py`` (the
same calls, awaited on an event loop in a private thread), so the tests are
written once. The ``native`` face (memory only) is an ``AsyncStore`` over an
async backend with no sync twin (``tests/aio_native.py``), as the explorer's
is: every call runs in the loop, no worker thread. A test that reaches a
strategy not yet native there (``NotNativeYet``) is skipped, saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import accord
from tests.aio_driver import Loop, Proxy
from tests.conftest import _postgres_schema_url

FACES = ["sync", "async", "native"]


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
    loop = Loop() if face != "sync" else None
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

            if face == "native":
                from tests.aio_native import InlineMemoryBackend

                astore = aio.AsyncStore(InlineMemoryBackend(shared["backend"]), **kwargs)
                astore.needs_twin = _recording(astore.needs_twin)  # type: ignore[method-assign]
                store = Proxy(astore, loop)
            elif backend_name == "memory":
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The native face is memory's alone: its other combinations are not run.
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        chosen = params.params if params is not None else {}
        if chosen.get("face") == "native":
            if chosen.get("backend_name") not in (None, "memory"):
                drop.append(item)
                continue
            # A test's own threads that reach a strategy not native yet end
            # with NotNativeYet; the test is skipped for it (below).
            item.add_marker(
                pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
            )
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


_NOT_NATIVE: list[str] = []
"""The strategies refused on the native face during the running test."""


def _recording(needs_twin: Callable[[str], Any]) -> Callable[[str], Any]:
    def recorded(what: str) -> Any:
        try:
            return needs_twin(what)
        except Exception:
            _NOT_NATIVE.append(what)
            raise

    return recorded


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    # Transitional: on the native face, a strategy that still runs on a sync
    # twin refuses with NotNativeYet; a test that failed after one (even one
    # it caught, expecting a UsageError of its own) says which, and is
    # skipped. A test that passes is not touched.
    _NOT_NATIVE.clear()
    try:
        return (yield)
    except Exception:
        if pyfuncitem.funcargs.get("face") == "native" and _NOT_NATIVE:
            pytest.skip(f"not native yet: {_NOT_NATIVE[0]}")
        raise
