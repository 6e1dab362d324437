"""The journal in PostgreSQL, for replicas that share one memory.

Why these choices:

- The same rules as every store (``daemon.journal.core``): this module only says how to
  run one ``Tx`` atomically and how to store a row, so SQLite and PostgreSQL cannot drift
  apart (one contract test suite runs against both, and against a real server).
- psycopg 3 (sync) on one connection owned by one worker thread, like the SQLite store:
  the event loop never blocks on the network, and calls are serialised without a lock.
- Every unit of work takes ``pg_advisory_xact_lock`` first, so the read-then-write in
  ``begin`` is atomic across replicas (two processes claiming the same key get one
  winner: the second waits for the lock, then reads the first one's row). The lock is
  the database's, released with the transaction, so a killed replica cannot hold it.
  Journal transactions are a few per write and per poll of a stopped node, so one lock
  for the whole journal costs nothing measurable and keeps the SQLite semantics exactly.
- The password comes from a file (``password_file``), never from the URL in settings,
  and the URL is shown without it in every message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import structlog

from daemon.journal.core import COLUMNS, Tx, history_query, history_row, utc
from daemon.journal.store import HistoryRow
from daemon.journal.threaded import OneThreadJournal
from daemon.kernel.errors import JournalError
from daemon.kernel.keys import STREAK_HOLDS

T = TypeVar("T")
log = structlog.get_logger("aomd.journal")

LOCK_ID = 0x616F6D64  # "aomd": the one advisory lock every journal transaction takes


MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: intents with outcomes, triggers aomd disabled (per account, as the SQLite
    # journal's step 3), first sightings of stopped nodes
    (
        """CREATE TABLE intents (
            key          TEXT PRIMARY KEY,
            kind         TEXT NOT NULL,
            workflow_id  TEXT NOT NULL,
            execution_id TEXT,
            node_id      TEXT,
            attempt      INTEGER NOT NULL,
            rule         TEXT NOT NULL,
            reason       TEXT NOT NULL,
            observed     TEXT NOT NULL,
            dry_run      BOOLEAN NOT NULL,
            outcome      TEXT NOT NULL,
            request_id   TEXT,
            error        TEXT,
            created_at   TIMESTAMPTZ NOT NULL,
            finished_at  TIMESTAMPTZ,
            tries        INTEGER NOT NULL,
            repeats      INTEGER NOT NULL DEFAULT 1,
            first_at     TIMESTAMPTZ
        )""",
        "CREATE INDEX intents_execution ON intents (execution_id)",
        "CREATE INDEX intents_created ON intents (created_at)",
        "CREATE INDEX intents_workflow_created ON intents (workflow_id, created_at)",
        """CREATE TABLE owned_triggers (
            account     TEXT NOT NULL,
            workflow_id TEXT NOT NULL,
            reason      TEXT NOT NULL,
            owned_at    TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (account, workflow_id)
        )""",
        """CREATE TABLE sightings (
            execution_id TEXT NOT NULL,
            node_id      TEXT NOT NULL,
            first_seen   TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (execution_id, node_id)
        )""",
        "CREATE INDEX sightings_first_seen ON sightings (first_seen)",
    ),
    # 2: the schedule runner's ticks; open rows found by index (the SQLite journal's step 2)
    (
        """CREATE TABLE ticks (
            scope TEXT PRIMARY KEY,
            at    TIMESTAMPTZ NOT NULL
        )""",
        "CREATE INDEX intents_open ON intents (outcome) WHERE outcome IN ('pending', 'unknown')",
    ),
    # 3: overrides (the SQLite journal's step 4), one JSON document each
    (
        """CREATE TABLE overrides (
            id    TEXT PRIMARY KEY,
            doc   TEXT NOT NULL,
            until TIMESTAMPTZ NOT NULL
        )""",
    ),
)
LATEST = len(MIGRATIONS)


def redact_url(url: str) -> str:
    """The URL as it may be shown: any password in it replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{host}"))


def _row(r: tuple[Any, ...]) -> HistoryRow:
    return history_row(r, utc)


class _PgTx:
    """``Tx`` on a connection already inside a transaction holding the journal lock."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        self.cur.execute(sql, params)
        return list(self.cur.fetchall())

    def get_intent(self, key: str) -> HistoryRow | None:
        rows = self._all(f"SELECT {COLUMNS} FROM intents WHERE key = %s", (key,))
        return _row(rows[0]) if rows else None

    def put_intent(self, row: HistoryRow) -> None:
        self.cur.execute(
            f"INSERT INTO intents ({COLUMNS}) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (key) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS.split(", ")[1:]),
            (
                row.key,
                row.kind,
                row.workflow_id,
                row.execution_id,
                row.node_id,
                row.attempt,
                row.rule,
                row.reason,
                row.observed,
                row.dry_run,
                row.outcome,
                row.request_id,
                row.error,
                utc(row.at),
                None if row.finished_at is None else utc(row.finished_at),
                row.tries,
                row.repeats,
                None if row.first_at is None else utc(row.first_at),
            ),
        )

    def compactable(
        self, kinds: frozenset[str], since: datetime | None, cutoff: datetime
    ) -> list[HistoryRow]:
        sql = (
            f"SELECT {COLUMNS} FROM intents WHERE created_at < %s AND kind = ANY(%s) "
            "AND finished_at IS NOT NULL"
        )
        params: list[Any] = [utc(cutoff), sorted(kinds)]
        if since is not None:
            sql += " AND created_at >= %s"
            params.append(utc(since))
        return [_row(r) for r in self._all(sql, tuple(params))]

    def delete_intents(self, keys: list[str]) -> None:
        self.cur.execute("DELETE FROM intents WHERE key = ANY(%s)", (keys,))

    def forget_execution(self, execution_id: str) -> None:
        self.cur.execute("DELETE FROM sightings WHERE execution_id = %s", (execution_id,))

    def intents_of(self, execution_id: str) -> list[HistoryRow]:
        rows = self._all(f"SELECT {COLUMNS} FROM intents WHERE execution_id = %s", (execution_id,))
        return [_row(r) for r in rows]

    def sightings_of(self, execution_id: str) -> dict[str, datetime]:
        rows = self._all(
            "SELECT node_id, first_seen FROM sightings WHERE execution_id = %s", (execution_id,)
        )
        return {node: utc(at) for node, at in rows}

    def add_sighting(self, execution_id: str, node_id: str, at: datetime) -> None:
        self.cur.execute(
            "INSERT INTO sightings (execution_id, node_id, first_seen) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (execution_id, node_id, utc(at)),
        )

    def remove_sighting(self, execution_id: str, node_id: str) -> None:
        self.cur.execute(
            "DELETE FROM sightings WHERE execution_id = %s AND node_id = %s",
            (execution_id, node_id),
        )

    def owned(self, account: str | None) -> set[str]:
        if account is None:
            rows = self._all("SELECT workflow_id FROM owned_triggers")
        else:
            rows = self._all(
                "SELECT workflow_id FROM owned_triggers WHERE account IN (%s, '')", (account,)
            )
        return {r[0] for r in rows}

    def set_owned(self, account: str, workflow_id: str, reason: str, at: datetime) -> None:
        if account:
            self.unset_owned("", workflow_id)
        self.cur.execute(
            "INSERT INTO owned_triggers (account, workflow_id, reason, owned_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (account, workflow_id) DO UPDATE SET "
            "reason = excluded.reason, owned_at = excluded.owned_at",
            (account, workflow_id, reason, utc(at)),
        )

    def unset_owned(self, account: str, workflow_id: str) -> None:
        self.cur.execute(
            "DELETE FROM owned_triggers WHERE account IN (%s, '') AND workflow_id = %s",
            (account, workflow_id),
        )

    def owned_at(self, account: str, workflow_id: str) -> datetime | None:
        rows = self._all(
            "SELECT owned_at FROM owned_triggers WHERE workflow_id = %s AND account IN (%s, '') "
            "ORDER BY account DESC LIMIT 1",
            (workflow_id, account),
        )
        return utc(rows[0][0]) if rows else None

    def get_overrides(self) -> list[str]:
        return [r[0] for r in self._all("SELECT doc FROM overrides")]

    def put_override(self, override_id: str, doc: str, until: datetime) -> None:
        self.cur.execute(
            "INSERT INTO overrides (id, doc, until) VALUES (%s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, until = excluded.until",
            (override_id, doc, utc(until)),
        )

    def select_history(
        self, since: datetime | None, workflow_id: str | None, limit: int | None
    ) -> list[HistoryRow]:
        at = None if since is None else utc(since)
        sql, params = history_query(at, workflow_id, limit, "%s")
        return [_row(r) for r in self._all(sql, tuple(params))]

    def unresolved(self) -> list[HistoryRow]:
        rows = self._all(f"SELECT {COLUMNS} FROM intents WHERE outcome IN ('pending', 'unknown')")
        return [_row(r) for r in rows]

    def get_tick(self, scope: str) -> datetime | None:
        rows = self._all("SELECT at FROM ticks WHERE scope = %s", (scope,))
        return utc(rows[0][0]) if rows else None

    def set_tick(self, scope: str, at: datetime) -> None:
        self.cur.execute(
            "INSERT INTO ticks (scope, at) VALUES (%s, %s) "
            "ON CONFLICT (scope) DO UPDATE SET at = excluded.at",
            (scope, utc(at)),
        )

    def prune(self, cutoff: datetime) -> int:
        at = utc(cutoff)
        self.cur.execute(
            "DELETE FROM intents WHERE created_at < %s AND finished_at IS NOT NULL "
            "AND finished_at < %s",
            (at, at),
        )
        intents = self.cur.rowcount
        # a failure-streak hold lasts until a person acts, however old (streak-holds/...)
        self.cur.execute(
            "DELETE FROM sightings WHERE first_seen < %s AND execution_id NOT LIKE %s",
            (at, f"{STREAK_HOLDS}/%"),
        )
        return int(intents) + int(self.cur.rowcount)


class PostgresJournal(OneThreadJournal):
    """``Journal`` in a PostgreSQL database (``url``: ``postgresql://user@host:port/db``).

    Several replicas may share it: every transaction holds the journal's advisory lock.
    """

    def __init__(self, url: str, *, password: str | None = None, timeout: float = 10.0) -> None:
        self.url = url
        self._password = password
        self.timeout = timeout

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"PostgresJournal(url={redact_url(self.url)!r}, {state})"

    async def _run(self, op: Callable[[Tx], T]) -> T:
        return await self.run_raw(lambda cur: op(_PgTx(cur)))

    async def run_raw(self, op: Callable[[Any], T]) -> T:
        """Run ``op(cursor)`` in one transaction holding the journal lock."""
        conn, pool = self._conn, self._pool
        if conn is None or pool is None:
            raise JournalError(f"journal {redact_url(self.url)} is not open")
        return await asyncio.get_running_loop().run_in_executor(pool, self._transact, conn, op)

    def _transact(self, conn: Any, op: Callable[[Any], T]) -> T:
        import psycopg

        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
                return op(cur)
        except psycopg.Error as exc:
            raise self._error("transaction", exc) from exc

    def _error(self, what: str, exc: BaseException) -> JournalError:
        text = str(exc).replace(self._password, "***") if self._password else str(exc)
        return JournalError(f"journal {redact_url(self.url)}: {what} failed: {text}")

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError as exc:  # an optional extra: say how to get it
            raise JournalError(
                "journal.url is a PostgreSQL URL but psycopg is not installed: "
                "install aomd with the 'postgres' extra (pip install 'aomd[postgres]')"
            ) from exc
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": max(1, int(self.timeout))}
        if self._password is not None:
            kwargs["password"] = self._password
        try:
            conn = psycopg.connect(self.url, **kwargs)
        except psycopg.Error as exc:
            raise self._error("open", exc) from exc
        try:
            found, now = self._migrate(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise self._error("open", exc) from exc
            raise
        fields: dict[str, Any] = {"url": redact_url(self.url), "schema": now}
        if found != now:
            fields["migrated_from"] = found
        log.info("journal_opened", **fields)
        return conn

    def _migrate(self, conn: Any) -> tuple[int, int]:
        """Apply the missing steps, each in its own transaction with the version bump,
        under the journal lock (another replica may be migrating at the same moment)."""
        found: int | None = None
        while True:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
                cur.execute("CREATE TABLE IF NOT EXISTS aomd_schema (version INTEGER NOT NULL)")
                cur.execute("SELECT version FROM aomd_schema")
                row = cur.fetchone()
                current = 0 if row is None else int(row[0])
                found = current if found is None else found
                if current > LATEST:
                    raise JournalError(
                        f"journal {redact_url(self.url)} has schema version {current}, but "
                        f"this aomd only knows up to {LATEST}: it was written by a newer "
                        "aomd. Upgrade aomd, or point journal.url at another database."
                    )
                if current == LATEST:
                    return found, current
                for statement in MIGRATIONS[current]:
                    cur.execute(statement)
                if row is None:
                    cur.execute("INSERT INTO aomd_schema (version) VALUES (%s)", (current + 1,))
                else:
                    cur.execute("UPDATE aomd_schema SET version = %s", (current + 1,))


async def copy_from_sqlite(sqlite_path: str, target: PostgresJournal) -> dict[str, int]:
    """Copy a SQLite journal into an empty PostgreSQL one, in one transaction: a replica
    set moving to a shared journal keeps every intent, outcome, claimed trigger, first
    sighting and schedule tick, so nothing is re-sent or forgotten after the move.

    The SQLite file is migrated to the latest schema first (opened read-write once);
    the target must hold no intents (refused otherwise: a merge of two histories is not
    a copy). Returns rows copied per table."""
    from daemon.journal.sqlite import SqliteJournal

    source = SqliteJournal(sqlite_path)
    await source.open()  # migrates an older file to the current schema
    await source.close()
    await target.open()
    return await target.run_raw(lambda cur: _copy_rows(sqlite_path, cur))


_COPIED = {
    "intents": COLUMNS,
    "owned_triggers": "account, workflow_id, reason, owned_at",
    "sightings": "execution_id, node_id, first_seen",
    "ticks": "scope, at",
    "overrides": "id, doc, until",
}
_TIMES = {"created_at", "finished_at", "owned_at", "first_seen", "at", "until", "first_at"}


def _copy_rows(sqlite_path: str, cur: Any) -> dict[str, int]:
    import sqlite3

    cur.execute("SELECT count(*) FROM intents")
    if int(cur.fetchone()[0]):
        raise JournalError(
            "the PostgreSQL journal already holds intents: copy only into an empty one "
            "(a fresh database), so two histories are never mixed"
        )
    counts: dict[str, int] = {}
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        for table, columns in _COPIED.items():
            names = columns.split(", ")
            rows = src.execute(f"SELECT {columns} FROM {table}").fetchall()
            values = [
                tuple(
                    _as_time(v) if n in _TIMES and v is not None else _as_bool(n, v)
                    for n, v in zip(names, row, strict=True)
                )
                for row in rows
            ]
            if values:
                marks = ", ".join(["%s"] * len(names))
                cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)
            counts[table] = len(values)
    finally:
        src.close()
    return counts


def _as_time(value: str) -> datetime:
    return utc(datetime.fromisoformat(value))


def _as_bool(name: str, value: Any) -> Any:
    return bool(value) if name == "dry_run" else value
