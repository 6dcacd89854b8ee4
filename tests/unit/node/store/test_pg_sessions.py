"""The session settings of every PostgreSQL connection (issue 18; docs/adr/0700):
READ COMMITTED whatever the server's default, a vanished lock holder cut by the
server, a lock wait bounded (UNAVAILABLE), read-only kept across a reconnect, a
connection lost during COMMIT reported as in doubt (REQ-NFR availability)."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from node.core._config_storage import StorageConfig
from node.rpc._status import map_error
from node.store import CommitInDoubt, StorageError, StorageUnavailable, connect
from node.store._backend import resolve
from node.store._dense import lock_dense_indexes
from node.store._pg import PgConnection, SessionLimits
from node.store._pg_local import LocalPostgres

#: the holder of a lock keeps it as long as the test needs; a waiter waits as long
LONG = SessionLimits(idle_in_transaction_ms=600_000, lock_wait_ms=600_000)
JOIN_S = 120  # a hang guard for the threads, never an assertion on a duration


def _dbname(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _take_next(conn: PgConnection) -> int:
    """The dense ``max + 1`` allocation under the dense-index lock (node/store/_dense.py)."""
    lock_dense_indexes(conn)
    (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM dense").fetchone()
    conn.execute("INSERT INTO dense (seq) VALUES (?)", (seq,))
    return int(seq)


@pytest.mark.parametrize(
    "server_default",
    [
        pytest.param("repeatable read", id="repeatable-read"),
        pytest.param("serializable", id="serializable"),
    ],
)
def test_overlapping_writers_get_dense_distinct_indexes_whatever_the_default(
    postgres_server: LocalPostgres, pg_url: str, server_default: str
) -> None:
    """Issue 18 (defect 1): with a database default of REPEATABLE READ or SERIALIZABLE,
    a writer that waited for the dense lock still sees its holder's commit: the two
    overlapping writers get 1 and 2, never 1 twice."""
    postgres_server.admin(
        f"ALTER DATABASE {_dbname(pg_url)} SET default_transaction_isolation = '{server_default}'"
    )
    first = PgConnection(pg_url, limits=LONG)
    second = PgConnection(pg_url, limits=LONG)
    try:
        first.execute("CREATE TABLE dense (seq BIGINT PRIMARY KEY)")
        first.execute("BEGIN")
        assert first.execute("SHOW transaction_isolation").fetchone() == ("read committed",)
        got: list[int] = [_take_next(first)]
        failures: list[BaseException] = []
        waiting = threading.Event()

        def overlap() -> None:
            try:
                second.execute("BEGIN")
                waiting.set()
                got.append(_take_next(second))  # its snapshot starts while it waits
                second.execute("COMMIT")
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)
                waiting.set()

        worker = threading.Thread(target=overlap)
        worker.start()
        assert waiting.wait(JOIN_S)
        first.execute("COMMIT")
        worker.join(JOIN_S)
        assert not failures, failures
        assert sorted(got) == [1, 2]
        rows = first.execute("SELECT seq FROM dense ORDER BY seq").fetchall()
        assert rows == [(1,), (2,)]
    finally:
        first.close()
        second.close()


def test_a_holder_gone_idle_in_transaction_is_cut_and_the_waiter_proceeds(pg_url: str) -> None:
    """Issue 18 (defect 2): a replica that took the dense lock and went silent (machine
    gone) is cut by the server's idle_in_transaction_session_timeout; the writer
    waiting for the lock then gets it and commits."""
    holder = PgConnection(pg_url, limits=SessionLimits(idle_in_transaction_ms=200))
    waiter = PgConnection(pg_url, limits=LONG)
    try:
        waiter.execute("CREATE TABLE dense (seq BIGINT PRIMARY KEY)")
        holder.execute("BEGIN")
        assert _take_next(holder) == 1  # then the holder says nothing more
        waiter.execute("BEGIN")
        assert _take_next(waiter) == 1  # granted once the server cut the holder
        waiter.execute("COMMIT")
        with pytest.raises(StorageUnavailable):
            holder.execute("SELECT 1")  # its transaction is over, nothing of it kept
        holder.execute("ROLLBACK")
        assert holder.execute("SELECT seq FROM dense").fetchall() == [(1,)]
    finally:
        holder.close()
        waiter.close()


def test_a_lock_wait_past_lock_timeout_is_unavailable(pg_url: str) -> None:
    """Issue 18 (defect 2): a writer that waits for a lock longer than lock_timeout
    fails with StorageUnavailable (UNAVAILABLE, STORAGE_UNAVAILABLE), and its
    connection stays usable."""
    holder = PgConnection(pg_url, limits=LONG)
    waiter = PgConnection(pg_url, limits=SessionLimits(lock_wait_ms=100))
    try:
        holder.execute("BEGIN")
        lock_dense_indexes(holder)
        waiter.execute("BEGIN")
        with pytest.raises(StorageUnavailable) as caught:
            lock_dense_indexes(waiter)
        mapped = map_error(caught.value)
        assert (mapped.status, mapped.reason) == (
            grpc.StatusCode.UNAVAILABLE,
            "STORAGE_UNAVAILABLE",
        )
        waiter.execute("ROLLBACK")
        holder.execute("ROLLBACK")
        assert waiter.execute("SELECT 1").fetchone() == (1,)
    finally:
        holder.close()
        waiter.close()


def test_every_connection_carries_the_session_settings(
    postgres_server: LocalPostgres, pg_url: str
) -> None:
    """Issue 18 (defects 1, 2): the settings are the session's own, from libpq
    options, and a reconnect carries them again."""
    conn = PgConnection(
        pg_url, limits=SessionLimits(idle_in_transaction_ms=7000, lock_wait_ms=9000)
    )
    try:

        def settings() -> dict[str, str]:
            names = (
                "default_transaction_isolation",
                "idle_in_transaction_session_timeout",
                "lock_timeout",
            )
            return {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}

        expected = {
            "default_transaction_isolation": "read committed",
            "idle_in_transaction_session_timeout": "7s",
            "lock_timeout": "9s",
        }
        assert settings() == expected
        postgres_server.terminate(_dbname(pg_url))
        with pytest.raises(StorageUnavailable):
            conn.execute("SELECT 1")
        assert settings() == expected  # on the new connection
    finally:
        conn.close()


def test_a_readonly_connection_refuses_writes_after_a_reconnect(
    postgres_server: LocalPostgres, pg_url: str
) -> None:
    """Issue 18 (defect 10): read-only is part of every (re)connection of a read-only
    adapter: after its backend is killed, the reconnected session still refuses a write."""
    connect(pg_url).close()  # migrated
    ro = connect(pg_url, readonly=True)
    try:
        postgres_server.terminate(_dbname(pg_url))
        with pytest.raises(StorageUnavailable):
            ro.execute("SELECT 1")
        assert ro.execute("SELECT 1").fetchone() == (1,)  # reconnected
        with pytest.raises(Exception) as caught:
            ro.execute("CREATE TABLE written (i INTEGER)")
        assert getattr(caught.value, "sqlstate", None) == "25006"  # read_only_sql_transaction
    finally:
        ro.close()


def test_a_connection_lost_during_commit_is_in_doubt(pg_url: str) -> None:
    """Issue 18 (defect 5): the backend ends while COMMIT runs (a deferred trigger
    terminates it): the adapter cannot know whether the transaction committed, so it
    says COMMIT_IN_DOUBT (UNAVAILABLE), never "nothing was committed"."""
    conn = PgConnection(pg_url, limits=LONG)
    try:
        conn.executescript(
            """
            CREATE TABLE doomed (i INTEGER);
            CREATE FUNCTION end_me() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON doomed
              DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION end_me();
            """
        )
        conn.execute("BEGIN")
        conn.execute("INSERT INTO doomed (i) VALUES (1)")
        with pytest.raises(CommitInDoubt) as caught:
            conn.execute("COMMIT")
        assert not isinstance(caught.value, StorageUnavailable)
        assert "unknown" in str(caught.value)
        mapped = map_error(caught.value)
        assert (mapped.status, mapped.reason) == (grpc.StatusCode.UNAVAILABLE, "COMMIT_IN_DOUBT")
        assert not conn.in_transaction
        assert conn.execute("SELECT 1").fetchone() == (1,)  # reconnects afterwards
    finally:
        conn.close()


def test_a_lost_connection_before_commit_is_still_nothing_committed(
    postgres_server: LocalPostgres, pg_url: str
) -> None:
    """Issue 18 (defect 5): a connection known lost before COMMIT was sent means the
    server rolled the transaction back: StorageUnavailable, not in doubt."""
    conn = PgConnection(pg_url, limits=LONG)
    try:
        conn.execute("BEGIN")
        postgres_server.terminate(_dbname(pg_url))
        with pytest.raises(StorageUnavailable):
            conn.execute("SELECT 1")
        with pytest.raises(StorageUnavailable):
            conn.execute("COMMIT")
    finally:
        conn.close()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\xff\xfes3cr3t", id="not-utf8"),
        pytest.param(b"pass\xc3word\n", id="truncated-sequence"),
    ],
)
def test_a_password_file_that_is_not_utf8_is_refused_without_its_bytes(
    tmp_path: Path, content: bytes
) -> None:
    """Issue 18 (defect 15): PASSWORD_FILE_INVALID, and the message quotes no byte
    of the file (a secret)."""
    secret = tmp_path / "pg.password"
    secret.write_bytes(content)
    with pytest.raises(StorageError) as caught:
        resolve(StorageConfig(url="postgresql://huxin@db.example/huxin", password_file=secret))
    assert caught.value.code == "PASSWORD_FILE_INVALID"
    text = str(caught.value)
    assert "\\x" not in text and "0x" not in text and "s3cr3t" not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_a_unit_whose_commit_is_lost_fails_in_doubt_and_the_next_unit_commits(
    pg_url: str,
) -> None:
    """Issue 18 (defect 5): through the unit of work, the group whose COMMIT lost its
    connection fails with COMMIT_IN_DOUBT; the writer reconnects for the next unit."""
    from node.store._db import Database

    db = await Database.open(pg_url)
    try:
        await db.write_unit(
            lambda c: c.executescript(
                """
                CREATE TABLE doomed (i INTEGER);
                CREATE FUNCTION end_me() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW.i = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid());
                END IF; RETURN NULL; END $$;
                CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON doomed
                  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION end_me();
                """
            )
        )
        with pytest.raises(CommitInDoubt):
            await db.write_unit(lambda c: c.execute("INSERT INTO doomed (i) VALUES (1)"))
        await db.write_unit(lambda c: c.execute("INSERT INTO doomed (i) VALUES (2)"))
        assert await db.fetchall("SELECT i FROM doomed", ()) == [(2,)]
    finally:
        await db.close()
