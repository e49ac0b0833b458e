"""SQLite specifics: files, bad files, permissions, error translation."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

import accord


def test_default_url_is_a_sqlite_file_in_dot_accord(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ACCORD_URL", raising=False)
    with accord.open() as store:
        store.session("a").write("k", "v")
        assert store.url == "sqlite:///.accord/state.db"
    assert (tmp_path / ".accord" / "state.db").exists()


def test_accord_url_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_URL", f"sqlite:///{tmp_path}/env.db")
    with accord.open() as store:
        store.session("a").write("k", "v")
    assert (tmp_path / "env.db").exists()


def test_absolute_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with accord.open("sqlite:///rel/state.db") as s:
        s.session("a").write("k", "v")
    assert (tmp_path / "rel" / "state.db").exists()
    with accord.open(f"sqlite:///{tmp_path}/abs.db") as s:
        s.session("a").write("k", "v")
    assert (tmp_path / "abs.db").exists()


def test_reopen_keeps_data_and_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    with accord.open(url) as s:
        s.session("a").write("k", "v")
        rev = s.revision()
    with accord.open(url) as s:
        assert s.session("b").read("k").value == "v"
        assert s.revision() == rev


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(accord.BackendUnavailable, match="did not create"):
        accord.open(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not sqlite" * 100)
    with pytest.raises(accord.BackendUnavailable, match="not an accord store"):
        accord.open(f"sqlite:///{path}")
    assert path.read_text().startswith("hello")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_file(tmp_path: Path) -> None:  # pragma: no cover - not as root
    url = f"sqlite:///{tmp_path}/ro.db"
    accord.open(url).close()
    (tmp_path / "ro.db").chmod(0o444)
    with pytest.raises(accord.BackendUnavailable, match="read-only"):
        accord.open(url)


def test_read_only_file_as_root(tmp_path: Path) -> None:
    # Root ignores permission bits, so make SQLite itself open read-only:
    url = f"sqlite:///{tmp_path}/ro.db"
    with accord.open(url) as s:
        s.session("a").write("k", "v")
    backend = s.backend
    backend._closed = False  # type: ignore[attr-defined]
    from accord.backends.sqlite import SQLiteBackend

    b = SQLiteBackend(url)
    b._local.conn = sqlite3.connect(
        f"file:{tmp_path}/ro.db?mode=ro", uri=True, isolation_level=None
    )
    from accord.records import Put

    with pytest.raises(accord.BackendUnavailable, match="read-only"):
        b.txn([], [Put("k2", "text", b"v")])
    assert b.get("k2") is None


def test_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(accord.BackendUnavailable, match="Cannot create the store directory"):
        accord.open(f"sqlite:///{blocker}/sub/state.db")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://host/x.db",
        "sqlite:///",
        "sqlite:///:memory:",
        "nope://x",
        "just-a-path",
        "sqlite:///x.db?synchronous=bogus",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(accord.UsageError):
        accord.open(url)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    accord.open(url).close()
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(accord.BackendUnavailable, match="newer accord"):
        accord.open(url)


def test_busy_is_translated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db?busy_timeout=0.05"
    with accord.open(url) as store:
        store.session("a").write("k", "v")
        blocker = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(accord.BackendUnavailable, match="write lock") as info:
                store.session("a").write("k", "w", expect=1)
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        finally:
            blocker.execute("ROLLBACK")
        assert store.session("a").read("k").value == "v"


def test_closed_store(tmp_path: Path) -> None:
    store = accord.open(f"sqlite:///{tmp_path}/s.db")
    store.close()
    with pytest.raises(accord.BackendUnavailable, match="closed"):
        store.session("a").read("k")


def test_errors_pickle() -> None:
    import pickle

    exc = accord.Conflict(
        "msg", key="k", expected=1, current=2, writers=[(2, "b")], value="x", diff=""
    )
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is accord.Conflict and again.current == 2 and str(again) == "msg"
    assert accord.Conflict.__module__ == "accord"


def test_many_threads_open_a_new_file_at_once(tmp_path: Path) -> None:
    import threading

    for trial in range(10):
        url = f"sqlite:///{tmp_path}/new{trial}.db"
        barrier = threading.Barrier(6, timeout=10)
        errors: list[BaseException] = []

        def open_it(
            url: str = url,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                barrier.wait()
                with accord.open(url) as store:
                    store.session("a").scan("")
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
