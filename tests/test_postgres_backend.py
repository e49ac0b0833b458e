"""What only the PostgreSQL backend has to prove: commit-ordered revisions,
safe retries when a connection drops around COMMIT, LISTEN/NOTIFY waits that
survive a lost listener, the schema's versioning, and clear errors."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import accord
from accord.backends.memory import MemoryBackend
from accord.records import NOW, Append, Compare, Put

from .postgres_helpers import POSTGRES_URL, Proxy, schema_url, with_host


@pytest.fixture
def url() -> Iterator[str]:
    with schema_url() as u:
        yield u


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    try:
        yield p
    finally:
        p.close()


def put(key: str, data: bytes = b"x", **kw: Any) -> Put:
    event = {"agent": "t", "op": "write", "key": key, "outcome": "ok"}
    return Put(key, "text", data, "t", event=event, **kw)


def events_of(store: accord.Store, key: str) -> list[dict[str, Any]]:
    return [e for e in store.backend.history(key=key) if e.get("op") == "write"]


# --- revisions --------------------------------------------------------------------


def test_history_readers_never_see_a_later_revision_first(url: str) -> None:
    """Writers on different keys race; a reader tailing the history must see
    revisions without a gap: rev N+1 is never visible before rev N."""
    writers = [accord.open(url) for _ in range(4)]
    reader = accord.open(url)
    stop = threading.Event()
    problems: list[str] = []
    seen = [0]

    def write(i: int) -> None:
        for n in range(150):
            writers[i].backend.txn([], [put(f"k{i}/{n % 7}")])

    def tail() -> None:
        last = 0
        while not stop.is_set() or last < reader.backend.revision():
            revs = [e["rev"] for e in reader.backend.history(since=last)]
            if revs and revs != list(range(last + 1, last + 1 + len(revs))):
                problems.append(f"after {last} saw {revs[:5]}...")
                return
            last = revs[-1] if revs else last
            seen[0] = last

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    t = threading.Thread(target=tail)
    t.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    stop.set()
    t.join(60)
    for s in [*writers, reader]:
        s.close()
    assert not problems
    assert seen[0] == 600


# --- retries and transaction tokens ---------------------------------------------------


def test_a_repeated_token_reports_the_first_outcome(url: str) -> None:
    with accord.open(url) as store:
        b: Any = store.backend
        token = uuid.uuid4()
        compares = [Compare("k", "version", "==", 0)]
        failed = [Append({"agent": "t", "op": "write", "key": "k", "outcome": "conflict"})]
        first = b._txn(compares, [put("k", ttl=60)], failed, token)
        again = b._txn(compares, [put("k", ttl=60)], failed, token)
        assert first.succeeded and again.succeeded
        assert again.revision == first.revision and again.events == first.events
        assert again.records == first.records
        rec = b.get("k")
        assert rec is not None and rec.version == 1
        assert len(events_of(store, "k")) == 1
        assert b.replayed == 1


def test_write_whose_answer_was_lost_is_applied_once(url: str, proxy: Proxy) -> None:
    """The server commits, the connection drops before the answer arrives:
    the backend sends the write again with its token and gets the outcome."""
    with accord.open(proxy.url(url)) as store:
        a = store.session("a")
        a.write("doc", "v1")
        proxy.drop_next("response")
        doc = a.write("doc", "v2", expect=1)
        assert proxy.dropped == 1
        assert doc.version == 2
        b: Any = store.backend
        assert b.retried >= 1 and b.replayed == 1
        assert a.read("doc").value == "v2"
        assert [e["version"] for e in events_of(store, "doc")] == [1, 2]


def test_refusal_whose_answer_was_lost_is_recorded_once(url: str, proxy: Proxy) -> None:
    """A stale write is refused, its answer is lost: the repeat finds the
    first attempt's refusal (by its token) and reports the same Conflict,
    with one conflict event in the history, not two."""
    with accord.open(proxy.url(url)) as store:
        a = store.session("a")
        a.write("doc", "v1")
        a.write("doc", "v2", expect=1)
        proxy.drop_next("response")
        with pytest.raises(accord.Conflict) as info:
            a.write("doc", "stale", expect=1)
        assert proxy.dropped == 1
        assert info.value.current == 2
        b: Any = store.backend
        assert b.replayed == 1
        refusals = [e for e in events_of(store, "doc") if e["outcome"] == "conflict"]
        assert len(refusals) == 1 and refusals[0]["expected"] == 1
        assert a.read("doc").value == "v2"


def test_write_lost_on_the_way_is_applied_once(url: str, proxy: Proxy) -> None:
    with accord.open(proxy.url(url)) as store:
        a = store.session("a")
        a.write("doc", "v1")
        proxy.drop_next("request")
        doc = a.write("doc", "v2", expect=1)
        assert proxy.dropped == 1 and doc.version == 2
        b: Any = store.backend
        assert b.retried >= 1 and b.replayed == 0
        assert [e["version"] for e in events_of(store, "doc")] == [1, 2]


def test_unreachable_server_gives_backend_unavailable_with_the_fate(
    url: str, proxy: Proxy
) -> None:
    with accord.open(proxy.url(url + "&retry_timeout=1")) as store:
        a = store.session("a")
        a.write("doc", "v1")
        proxy.refuse = True
        proxy.kill_all()
        with pytest.raises(accord.BackendUnavailable) as info:
            a.write("doc", "v2", expect=1)
        assert info.value.fate == "unknown"
        assert "UNKNOWN" in str(info.value) and "idempotency_key" in str(info.value)
        with pytest.raises(accord.BackendUnavailable) as read:
            a.read("doc")
        assert "Nothing was written" in str(read.value)
        proxy.refuse = False
        assert a.read("doc").value == "v1"


def test_a_serializable_server_default_does_not_matter(url: str) -> None:
    # A server whose default isolation is serializable must not matter: the
    # backend runs its transactions at Read Committed.
    with accord.open(url + "&options=-c%20default_transaction_isolation%3Dserializable") as s:
        stores = [s, accord.open(url)]
        try:
            s.session("seed").write("c", 0)

            def bump(st: accord.Store, name: str) -> None:
                for _ in range(30):
                    st.session(name).update("c", lambda v: v + 1, retries=1000)

            threads = [
                threading.Thread(target=bump, args=(st, f"t{i}")) for i, st in enumerate(stores)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert s.session("seed").read("c").value == 60
        finally:
            stores[1].close()


# --- compares on the database -------------------------------------------------------------

VALUES: list[Any] = ["abc", "ab", "é", 1, 2.5, True, False, None, [1, 2], {"a": 1}, b"\x00"]


@pytest.mark.parametrize("op", ["==", "!="])
def test_value_equality_matches_python(url: str, op: str) -> None:
    mem = MemoryBackend()
    with accord.open(url) as store:
        for i, stored in enumerate(VALUES):
            kind, data = accord.records.encode_value(stored)
            for b in (mem, store.backend):
                b.txn([], [Put(f"v{i}", kind, data, "t")])
        for i in range(len(VALUES)):
            for expected in [*VALUES, 1.0, 0]:
                cmp = [Compare(f"v{i}", "value", op, expected)]  # type: ignore[arg-type]
                want = mem.txn(cmp, []).succeeded
                assert store.backend.txn(cmp, []).succeeded == want, (VALUES[i], op, expected)


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_value_ordering_matches_python(url: str, op: str) -> None:
    mem = MemoryBackend()
    pairs = [(1, 2), (2.5, 2), ("abc", "abd"), ("é", "z"), ("Z", "a"), (b"a", b"b")]
    with accord.open(url) as store:
        for i, (stored, expected) in enumerate(pairs):
            kind, data = accord.records.encode_value(stored)
            for b in (mem, store.backend):
                b.txn([], [Put(f"o{i}", kind, data, "t")])
            cmp = [Compare(f"o{i}", "value", op, expected)]  # type: ignore[arg-type]
            assert store.backend.txn(cmp, []).succeeded == mem.txn(cmp, []).succeeded
        store.backend.txn([], [Put("s", "text", b"x", "t")])
        with pytest.raises(accord.UsageError, match="Cannot compare"):
            store.backend.txn([Compare("s", "value", op, 3)], [])  # type: ignore[arg-type]


def test_ttl_and_now_use_the_database_clock(url: str) -> None:
    with accord.open(url) as store, psycopg.connect(POSTGRES_URL) as conn:
        b = store.backend
        res = b.txn([], [put("lease", ttl=30)])
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        assert row is not None
        rec = res.records["lease"]
        assert rec is not None and rec.expires is not None
        assert 0 < rec.expires - float(row[0]) <= 30
        assert b.txn([Compare("lease", "expires", ">", NOW)], []).succeeded


# --- wait ---------------------------------------------------------------------------------


def _listening(store: accord.Store) -> Any:
    b: Any = store.backend
    b.wait([], [], b.revision(), 0.01)
    deadline = time.monotonic() + 20
    while not b._listener.mark()[1]:
        assert time.monotonic() < deadline, "the listener never came up"
        time.sleep(0.01)
    return b


def _wait_in_thread(b: Any, keys: list[str], since: int) -> tuple[threading.Thread, dict[str, int]]:
    out: dict[str, int] = {}
    t = threading.Thread(target=lambda: out.update(rev=b.wait(keys, [], since, 600)), daemon=True)
    t.start()
    return t, out


def test_wait_is_woken_by_notify_not_by_polling(url: str) -> None:
    # poll=600: only a notification can end this wait before the join bound.
    with accord.open(url + "&poll=600") as waiter, accord.open(url) as writer:
        b = _listening(waiter)
        since = b.revision()
        t, out = _wait_in_thread(b, ["w/key"], since)
        writer.backend.txn([], [put("w/other")])
        writer.backend.txn([], [put("w/key")])
        t.join(30)
        assert not t.is_alive() and out["rev"] > since


def test_wait_survives_a_lost_listener(url: str) -> None:
    """The listener's connection is killed and the change happens while it is
    down: the notification is lost, the wait still ends (tables are the truth)."""
    with accord.open(url + "&poll=600") as waiter, accord.open(url) as writer:
        b = _listening(waiter)
        since = b.revision()
        t, out = _wait_in_thread(b, ["w/key"], since)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            killed = conn.execute(
                f'SELECT pg_terminate_backend(pid) FROM "{b.schema}".accord_listeners'
            ).fetchall()
        assert killed == [(True,)]
        writer.backend.txn([], [put("w/key")])
        t.join(30)
        assert not t.is_alive() and out["rev"] > since


# --- schema -------------------------------------------------------------------------------


def _open_and_write(url: str, agent: str, barrier: Any, results: Any) -> None:
    barrier.wait(timeout=60)
    try:
        with accord.open(url) as store:
            store.session(agent).write(f"hello/{agent}", agent)
        results.put((agent, "ok"))
    except Exception as exc:  # reported to the parent
        results.put((agent, repr(exc)))


def test_eight_processes_create_the_schema_at_once(url: str) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(8)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_open_and_write, args=(url, f"p{i}", barrier, results))
        for i in range(8)
    ]
    for p in procs:
        p.start()
    out = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    assert out == [(f"p{i}", "ok") for i in range(8)]
    with accord.open(url) as store:
        assert len(store.session("x").scan("hello/")) == 8


def test_schema_from_a_newer_accord_is_refused(url: str) -> None:
    with accord.open(url) as store:
        schema = store.backend.schema  # type: ignore[attr-defined]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(
            f"UPDATE \"{schema}\".accord_meta SET value = '99' WHERE name = 'schema_version'"
        )
    with pytest.raises(accord.BackendUnavailable, match=r"newer accord.*Upgrade accord"):
        accord.open(url)


def _open_counting_scripts(url: str, barrier: Any, results: Any) -> None:
    from accord.backends import _pg_schema

    ran: list[bool] = []
    create = _pg_schema.create

    def counting(*args: Any) -> None:
        ran.append(True)
        create(*args)

    _pg_schema.create = counting
    barrier.wait(timeout=60)
    accord.open(url).close()
    results.put(len(ran))


def test_processes_opening_a_new_store_at_once_run_the_script_once(url: str) -> None:
    """The others wait for the migration lock and then find the schema made;
    they used to run the script again (to_regclass() answered from a stale
    cache), which deadlocked with the first process's writers."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(6)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_open_counting_scripts, args=(url, barrier, results))
        for _ in range(6)
    ]
    for p in procs:
        p.start()
    runs = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert sorted(runs) == [0, 0, 0, 0, 0, 1]


def test_a_store_from_before_accord_put_if_is_brought_up_to_date(url: str) -> None:
    """A store made before accord_put_if (no function, no token column, an
    older functions digest) gets both at the next open, keeping its data."""
    with accord.open(url) as store:
        store.session("a").write("doc", "v1")
        schema = store.backend.schema  # type: ignore[attr-defined]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP FUNCTION "{schema}".accord_put_if')
        conn.execute(f'ALTER TABLE "{schema}".accord_events DROP COLUMN token')
        conn.execute(f"UPDATE \"{schema}\".accord_meta SET value = 'old' WHERE name = 'functions'")
    with accord.open(url) as store:
        a = store.session("a")
        doc = a.write("doc", "v2", expect=1)
        assert doc.version == 2 and a.read("doc").value == "v2"
        assert [e["version"] for e in events_of(store, "doc")] == [1, 2]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        row = conn.execute(
            f'SELECT token IS NOT NULL FROM "{schema}".accord_events ORDER BY rev DESC LIMIT 1'
        ).fetchone()
    assert row == (True,)


def test_a_store_from_before_the_lease_exclusion_is_brought_up_to_date(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store whose functions predate the vacant compare (the schema script
    of accord 0.1, kept in tests/) gets the new functions at the next open,
    keeps its data, and from then on a live lease keeps other writers out on
    both write functions (accord_txn and accord_put_if)."""
    from pathlib import Path

    from accord.backends import _pg_schema

    old_script = (Path(__file__).parent / "pg_schema_before_exclusion.sql").read_text()
    monkeypatch.setattr(_pg_schema, "load_schema_sql", lambda: old_script)
    accord.open(url).close()  # made by the old script: old functions, no tokens.failed
    monkeypatch.undo()
    schema = url.split("schema=")[1].split("&")[0]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{schema}".seed AS SELECT 1 AS x'  # a marker the upgrade keeps
        )
    with accord.open(url) as store:
        a, b = store.session("a"), store.session("b")
        a.write("doc", "v1")
        with a.lease("doc", ttl=30) as lease:
            with pytest.raises(accord.LeaseHeld):
                b.write("doc", "put_if", expect=1)  # accord_put_if
            with pytest.raises(accord.LeaseHeld):
                b.write("doc", "txn", force=True)  # accord_txn
            a.write("doc", "v2", lease=lease)
        assert b.write("doc", "v3", expect=2).version == 3
        outcomes = [e["outcome"] for e in events_of(store, "doc") if e["op"] == "write"]
        assert outcomes == ["ok", "fenced", "fenced", "ok", "ok"]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        assert conn.execute(f'SELECT x FROM "{schema}".seed').fetchone() == (1,)
        row = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname IN ('accord_txn', 'accord_put_if')",
            (schema,),
        ).fetchone()
    assert row == (2,)  # the old signatures were dropped, not left as overloads


def test_a_schema_accord_did_not_make_is_refused(url: str) -> None:
    schema = url.split("schema=")[1].split("&")[0]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".accord_meta (name text, value text)')
    with pytest.raises(accord.BackendUnavailable, match="not made by accord"):
        accord.open(url)


def test_reopening_keeps_the_data(url: str) -> None:
    with accord.open(url) as store:
        store.session("a").write("k", "v")
    with accord.open(url) as store:
        assert store.session("a").read("k").value == "v"


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("schema=bad-name", "Invalid schema name"),
        ("schema=pg_mine", "Invalid schema name"),
        ("pool_size=0", "pool_size"),
        ("retry_timeout=soon", "retry_timeout"),
        ("retry_timeout=inf", "retry_timeout"),
        ("retry_timeout=nan", "retry_timeout"),
        ("poll=inf", "poll"),
        ("pool_size=inf", "pool_size"),
        ("bogus=1", "libpq connection parameter"),
    ],
)
def test_bad_urls(query: str, match: str) -> None:
    with pytest.raises(accord.UsageError, match=match):
        accord.open(f"{POSTGRES_URL}?{query}")


def test_refused_connection() -> None:
    with pytest.raises(accord.BackendUnavailable, match="Nothing accepts connections"):
        accord.open(with_host(POSTGRES_URL, "127.0.0.1", 1))


def test_missing_database(url: str) -> None:  # the fixture: a server to ask
    base = POSTGRES_URL.rsplit("/", 1)[0]
    with pytest.raises(accord.BackendUnavailable, match="createdb no_such_db_accord"):
        accord.open(f"{base}/no_such_db_accord")


def test_missing_role(url: str) -> None:  # the fixture: a server to ask
    url = POSTGRES_URL.replace("postgres@", "no_such_role_accord@", 1)
    with pytest.raises(accord.BackendUnavailable, match="does not exist"):
        accord.open(url)


@pytest.fixture
def limited_role() -> Iterator[str]:
    """A login role with no right to create schemas in the database."""
    role = "accord_t_" + uuid.uuid4().hex[:8]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"REVOKE CREATE ON DATABASE test FROM {role}")
    try:
        yield role
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_missing_permissions_name_the_grant(url: str, limited_role: str) -> None:
    limited = url.replace("postgres@", f"{limited_role}@", 1)
    with pytest.raises(accord.BackendUnavailable, match="GRANT CREATE ON DATABASE"):
        accord.open(limited)
    # An administrator creates the schema; the role may read but not write.
    with accord.open(url) as store:
        store.session("admin").write("k", "v")
        schema = store.backend.schema  # type: ignore[attr-defined]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {limited_role}')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {limited_role}')
    with accord.open(limited) as store:
        assert store.session("reader").read("k").value == "v"
        with pytest.raises(accord.BackendUnavailable, match="GRANT USAGE ON SCHEMA") as info:
            store.session("reader").write("k2", "v")
        assert info.value.fate == "not applied"


def test_listeners_register_and_leave(url: str) -> None:
    # Writers notify only while a listener is registered: a store nobody
    # waits on pays nothing for NOTIFY.
    with accord.open(url) as store:
        b = store.backend
        schema = b.schema  # type: ignore[attr-defined]

        def count() -> int:
            with psycopg.connect(POSTGRES_URL) as conn:
                row = conn.execute(f'SELECT count(*) FROM "{schema}".accord_listeners').fetchone()
                assert row is not None
                return int(row[0])

        b.txn([], [put("k")])
        assert count() == 0
        _listening(store)
        assert count() == 1
    assert count() == 0


def test_text_array_literal_round_trips(url: str) -> None:
    """accord_put_if takes its guard lists as text[] literals built in Python."""
    from accord.backends._pg_rows import text_array as _text_array

    items = ["a", 'b"c', "d\\e", None, "NULL", "", "x,y", "{z}", "é ✓", " sp "]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        row = conn.execute("SELECT %s::text[]", (_text_array(items),)).fetchone()
    assert row is not None and row[0] == items
