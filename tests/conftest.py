"""Fixtures shared by every test.

``store_url`` / ``store`` / ``open_store`` are parametrised over every
backend: memory, sqlite (a real file) and postgresql (a real server). The
PostgreSQL leg is skipped with a clear message when no server answers,
unless ``ACCORD_REQUIRE_POSTGRES=1``, where a missing server fails the run.
Point it at a server with ``ACCORD_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import accord

POSTGRES_URL = os.environ.get("ACCORD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("ACCORD_REQUIRE_POSTGRES", "") not in ("", "0")

_pg_problem: str | None = None
_pg_checked = False


def postgres_problem() -> str | None:
    """Why the PostgreSQL leg cannot run here, or None if it can."""
    global _pg_checked, _pg_problem
    if _pg_checked:
        return _pg_problem
    _pg_checked = True
    try:
        import psycopg
    except ImportError:
        _pg_problem = "psycopg is not installed (pip install 'accord[postgres]')"
        return _pg_problem
    try:
        import accord.backends.postgres  # noqa: F401
    except ImportError as exc:
        _pg_problem = f"the PostgreSQL backend is not available ({exc})"
        return _pg_problem
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            pass
    except Exception as exc:
        _pg_problem = f"no PostgreSQL at {POSTGRES_URL} ({type(exc).__name__}: {exc})"
    return _pg_problem


def require_postgres() -> None:
    problem = postgres_problem()
    if problem is None:
        return
    if REQUIRE_POSTGRES:
        pytest.fail(f"ACCORD_REQUIRE_POSTGRES=1 but {problem}", pytrace=False)
    pytest.skip(f"PostgreSQL leg skipped: {problem}. Set ACCORD_TEST_POSTGRES to run it.")


def pytest_report_header(config: pytest.Config) -> str:
    problem = postgres_problem()
    if problem is None:
        return f"accord: PostgreSQL leg runs against {POSTGRES_URL}"
    if REQUIRE_POSTGRES:
        return f"accord: PostgreSQL REQUIRED but {problem}"
    return f"accord: PostgreSQL leg will be SKIPPED: {problem}"


def _postgres_schema_url() -> tuple[str, Callable[[], None]]:
    schema = "t_" + uuid.uuid4().hex[:12]
    sep = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{sep}schema={schema}"

    def drop() -> None:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return url, drop


BACKENDS = ["memory", "sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        require_postgres()
    return str(request.param)


@pytest.fixture
def open_store(backend_name: str, tmp_path: Path) -> Iterator[Callable[..., accord.Store]]:
    """Open (possibly several) Store objects on one fresh backend.

    For memory, every call shares one in-process backend; for sqlite one
    file; for postgresql one schema. Each Store is closed at the end.
    """
    opened: list[accord.Store] = []
    cleanup: list[Callable[[], None]] = []
    shared: dict[str, Any] = {}
    if backend_name == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    elif backend_name == "postgresql":
        url, drop = _postgres_schema_url()
        cleanup.append(drop)
    else:
        url = "memory://"

    def factory(**kwargs: Any) -> accord.Store:
        if backend_name == "memory":
            from accord.backends.memory import MemoryBackend
            from accord.store import Store

            if "backend" not in shared:
                shared["backend"] = MemoryBackend(clock=kwargs.pop("clock", None))
            else:
                kwargs.pop("clock", None)
            manifest = kwargs.pop("manifest", None)
            store = Store(shared["backend"], **kwargs)
            if manifest is not None:
                from accord.policy import load_policy

                load_policy(manifest).install(store)
        else:
            store = accord.open(url, **kwargs)
        opened.append(store)
        return store

    factory.url = url  # type: ignore[attr-defined]
    yield factory
    for store in opened:
        store.close()
    for fn in cleanup:
        fn()


@pytest.fixture
def store(open_store: Callable[..., accord.Store]) -> accord.Store:
    return open_store()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"
