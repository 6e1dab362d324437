"""The journal in one SQLite file (WAL), the default store.

Why these choices:

- stdlib ``sqlite3`` on one connection owned by one worker thread
  (``ThreadPoolExecutor(max_workers=1)``): calls are serialised without a lock, the event
  loop never blocks on disk, and no new dependency is needed. A caller cancelled while
  waiting does not cancel the statement: a begun intent is still committed, and the next
  pass finds it ``pending`` and resolves it by observation, which is the safe direction.
- ``journal_mode=WAL``: ``aomd history`` can read while the daemon writes.
- ``synchronous=FULL``: an intent must be on disk *before* the API call it guards. In WAL
  mode ``NORMAL`` survives a killed process but may lose the last commits on power loss,
  which could make aomd resend a write after a reboot. FULL costs one fsync per commit;
  writes are capped by the blast-radius limit (tens per minute) and a sighting that is
  already known commits no pages, so the cost does not matter.
- Every unit of work runs in ``BEGIN IMMEDIATE``: the read-then-write in ``begin`` holds
  the write lock, so two processes sharing a file (a leader hand-over) cannot both claim
  one key. ``busy_timeout`` makes them wait instead of failing.
- Instants are ISO-8601 UTC strings with microseconds: readable with the ``sqlite3``
  shell, and they sort as text in time order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import structlog

from daemon.journal import migrations
from daemon.journal.core import COLUMNS, Tx, history_query, history_row, utc
from daemon.journal.store import HistoryRow
from daemon.journal.threaded import OneThreadJournal
from daemon.kernel.errors import JournalError
from daemon.kernel.keys import STREAK_HOLDS

T = TypeVar("T")
log = structlog.get_logger("aomd.journal")


def _ts(at: datetime) -> str:
    return utc(at).isoformat(timespec="microseconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _row(r: tuple[Any, ...]) -> HistoryRow:
    return history_row(r, _parse)


_INCREMENTAL = 2
"""``PRAGMA auto_vacuum`` value of incremental mode."""


def _empty(conn: sqlite3.Connection) -> bool:
    return int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]) == 0


class _SqliteTx:
    """``Tx`` on a connection already inside a transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def get_intent(self, key: str) -> HistoryRow | None:
        r = self.conn.execute(f"SELECT {COLUMNS} FROM intents WHERE key = ?", (key,)).fetchone()
        return None if r is None else _row(r)

    def put_intent(self, row: HistoryRow) -> None:
        self.conn.execute(
            f"INSERT OR REPLACE INTO intents ({COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                int(row.dry_run),
                row.outcome,
                row.request_id,
                row.error,
                _ts(row.at),
                None if row.finished_at is None else _ts(row.finished_at),
                row.tries,
                row.repeats,
                None if row.first_at is None else _ts(row.first_at),
            ),
        )

    def intents_of(self, execution_id: str) -> list[HistoryRow]:
        cur = self.conn.execute(
            f"SELECT {COLUMNS} FROM intents WHERE execution_id = ?", (execution_id,)
        )
        return [_row(r) for r in cur]

    def sightings_of(self, execution_id: str) -> dict[str, datetime]:
        cur = self.conn.execute(
            "SELECT node_id, first_seen FROM sightings WHERE execution_id = ?", (execution_id,)
        )
        return {node: _parse(at) for node, at in cur}

    def add_sighting(self, execution_id: str, node_id: str, at: datetime) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO sightings (execution_id, node_id, first_seen) VALUES (?, ?, ?)",
            (execution_id, node_id, _ts(at)),
        )

    def remove_sighting(self, execution_id: str, node_id: str) -> None:
        self.conn.execute(
            "DELETE FROM sightings WHERE execution_id = ? AND node_id = ?", (execution_id, node_id)
        )

    def owned(self, account: str | None) -> set[str]:
        if account is None:
            rows = self.conn.execute("SELECT workflow_id FROM owned_triggers")
        else:
            rows = self.conn.execute(
                "SELECT workflow_id FROM owned_triggers WHERE account IN (?, '')", (account,)
            )
        return {r[0] for r in rows}

    def owned_at(self, account: str, workflow_id: str) -> datetime | None:
        r = self.conn.execute(
            "SELECT owned_at FROM owned_triggers WHERE workflow_id = ? AND account IN (?, '') "
            "ORDER BY account DESC LIMIT 1",
            (workflow_id, account),
        ).fetchone()
        return None if r is None else _parse(r[0])

    def set_owned(self, account: str, workflow_id: str, reason: str, at: datetime) -> None:
        if account:
            self.unset_owned("", workflow_id)
        self.conn.execute(
            "INSERT INTO owned_triggers (account, workflow_id, reason, owned_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (account, workflow_id) DO UPDATE SET "
            "reason = excluded.reason, owned_at = excluded.owned_at",
            (account, workflow_id, reason, _ts(at)),
        )

    def unset_owned(self, account: str, workflow_id: str) -> None:
        self.conn.execute(
            "DELETE FROM owned_triggers WHERE account IN (?, '') AND workflow_id = ?",
            (account, workflow_id),
        )

    def select_history(
        self, since: datetime | None, workflow_id: str | None, limit: int | None
    ) -> list[HistoryRow]:
        at = None if since is None else _ts(since)
        sql, params = history_query(at, workflow_id, limit, "?")
        return [_row(r) for r in self.conn.execute(sql, params)]

    def unresolved(self) -> list[HistoryRow]:
        cur = self.conn.execute(
            f"SELECT {COLUMNS} FROM intents WHERE outcome IN ('pending', 'unknown')"
        )
        return [_row(r) for r in cur]

    def get_tick(self, scope: str) -> datetime | None:
        r = self.conn.execute("SELECT at FROM ticks WHERE scope = ?", (scope,)).fetchone()
        return None if r is None else _parse(r[0])

    def set_tick(self, scope: str, at: datetime) -> None:
        self.conn.execute(
            "INSERT INTO ticks (scope, at) VALUES (?, ?) "
            "ON CONFLICT (scope) DO UPDATE SET at = excluded.at",
            (scope, _ts(at)),
        )

    def get_overrides(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT doc FROM overrides")]

    def put_override(self, override_id: str, doc: str, until: datetime) -> None:
        self.conn.execute(
            "INSERT INTO overrides (id, doc, until) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, until = excluded.until",
            (override_id, doc, _ts(until)),
        )

    def compactable(
        self, kinds: frozenset[str], since: datetime | None, cutoff: datetime
    ) -> list[HistoryRow]:
        marks = ", ".join("?" for _ in kinds)
        sql = (
            f"SELECT {COLUMNS} FROM intents WHERE created_at < ? AND kind IN ({marks}) "
            "AND finished_at IS NOT NULL"
        )
        params: list[object] = [_ts(cutoff), *sorted(kinds)]
        if since is not None:
            sql += " AND created_at >= ?"
            params.append(_ts(since))
        return [_row(r) for r in self.conn.execute(sql, params)]

    def delete_intents(self, keys: list[str]) -> None:
        self.conn.executemany("DELETE FROM intents WHERE key = ?", [(k,) for k in keys])

    def forget_execution(self, execution_id: str) -> None:
        self.conn.execute("DELETE FROM sightings WHERE execution_id = ?", (execution_id,))

    def prune(self, cutoff: datetime) -> int:
        at = _ts(cutoff)
        # By creation time (indexed): a row finishes after it was created, so every row
        # finished before the cutoff was also created before it.
        intents = self.conn.execute(
            "DELETE FROM intents WHERE created_at < ? AND finished_at IS NOT NULL "
            "AND finished_at < ?",
            (at, at),
        ).rowcount
        # a failure-streak hold lasts until a person acts, however old (streak-holds/...)
        sightings = self.conn.execute(
            "DELETE FROM sightings WHERE first_seen < ? AND execution_id NOT LIKE ?",
            (at, f"{STREAK_HOLDS}/%"),
        ).rowcount
        return int(intents) + int(sightings)


class SqliteJournal(OneThreadJournal):
    """``Journal`` in the SQLite file at ``path`` (created with its directory if missing).

    ``readonly=True`` (for ``aomd history``) opens the file with ``mode=ro``: it never
    creates, migrates or writes it, so an operator can read a journal owned by the
    service user while the daemon runs.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, readonly: bool = False, busy_timeout: float = 10.0
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.busy_timeout = busy_timeout

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"SqliteJournal(path={str(self.path)!r}, readonly={self.readonly}, {state})"

    def _close_conn(self, conn: sqlite3.Connection) -> None:
        try:
            conn.close()
        except sqlite3.Error as exc:
            raise self._error("close", exc) from exc

    async def _run(self, op: Callable[[Tx], T]) -> T:
        conn, pool = self._conn, self._pool
        if conn is None or pool is None:
            raise JournalError(f"journal {self.path} is not open")
        return await asyncio.get_running_loop().run_in_executor(pool, self._transact, conn, op)

    def _transact(self, conn: sqlite3.Connection, op: Callable[[Tx], T]) -> T:
        try:
            conn.execute("BEGIN" if self.readonly else "BEGIN IMMEDIATE")
            try:
                result = op(_SqliteTx(conn))
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error("transaction", exc) from exc
        return result

    def _error(self, what: str, exc: BaseException) -> JournalError:
        return JournalError(f"journal {self.path}: {what} failed: {exc}")

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.readonly:
                return self._connect_readonly()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise self._error("open", exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if _empty(conn):
                # Only possible before the first table exists; an older file is
                # converted below, once, by a VACUUM.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = FULL")
            found = migrations.version(conn)
            now = migrations.migrate(conn, self.path)
            self._enable_incremental_vacuum(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error("open", exc) from exc
            raise
        if mode != "wal":
            log.warning("journal_not_wal", path=str(self.path), journal_mode=mode)
        # migrated_from only when a migration of existing rows ran: "migrated_from=0" on
        # every start of a new file read as if something had been upgraded.
        extra: dict[str, object] = {}
        if found == 0 and now != 0:
            extra["created"] = True
        elif found != now:
            extra["migrated_from"] = found
        log.info("journal_opened", path=str(self.path), schema=now, **extra)
        return conn

    def _enable_incremental_vacuum(self, conn: sqlite3.Connection) -> None:
        """Switch a journal made before schema 4 to incremental auto-vacuum: without it a
        file never gives back the space of pruned rows (the soak's 17 GB at 90 days)."""
        if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) == _INCREMENTAL:
            return
        before = self.path.stat().st_size
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("VACUUM")  # rewrites the file once; needs its size again free on disk
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.info(
            "journal_vacuum_enabled",
            path=str(self.path),
            bytes_before=before,
            bytes_after=self.path.stat().st_size,
        )

    async def reclaim(self) -> int:
        """Give the free pages left by pruning and compaction back to the file system
        (``incremental_vacuum``) and truncate the WAL. Returns the bytes freed."""
        conn, pool = self._conn, self._pool
        if conn is None or pool is None:
            raise JournalError(f"journal {self.path} is not open")

        def op() -> int:
            try:
                free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
                size = int(conn.execute("PRAGMA page_size").fetchone()[0])
                if free:
                    # executescript steps the pragma to the end; a plain execute steps
                    # once, and each step frees a single page.
                    conn.executescript("PRAGMA incremental_vacuum;")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error as exc:
                raise self._error("vacuum", exc) from exc
            return free * size

        return await asyncio.get_running_loop().run_in_executor(pool, op)

    def size(self) -> int:
        """Bytes on disk: the file and its write-ahead log."""
        total = 0
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def _connect_readonly(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise JournalError(f"journal {self.path} does not exist")
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, isolation_level=None)
        try:
            found = migrations.version(conn)
            migrations.check_known(found, self.path)
            if found == 0:
                # An empty file (never migrated): read it as an empty journal.
                conn.close()
                conn = sqlite3.connect(":memory:", isolation_level=None)
                migrations.migrate(conn, ":memory:")
            elif found < migrations.LATEST:
                raise JournalError(
                    f"journal {self.path} has schema version {found}, older than this aomd's "
                    f"{migrations.LATEST}; start the daemon once to migrate it, then read it"
                )
        except BaseException:
            conn.close()
            raise
        return conn
