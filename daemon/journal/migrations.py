"""Versioned schema of the SQLite journal, tracked in ``PRAGMA user_version``.

Why a list and not ``CREATE TABLE IF NOT EXISTS``: a journal outlives many aomd
versions (it holds what was sent, and when), so each change is one numbered step applied
exactly once, in its own transaction together with the version bump. A file written by
a newer aomd is refused rather than misread. Steps are append-only: never edit a
released one, add the next.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.kernel.errors import JournalError

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: intents with outcomes, triggers aomd disabled, first sightings of stopped nodes.
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
            dry_run      INTEGER NOT NULL,
            outcome      TEXT NOT NULL,
            request_id   TEXT,
            error        TEXT,
            created_at   TEXT NOT NULL,
            finished_at  TEXT,
            tries        INTEGER NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX intents_execution ON intents (execution_id)",
        "CREATE INDEX intents_created ON intents (created_at)",
        "CREATE INDEX intents_workflow_created ON intents (workflow_id, created_at)",
        "CREATE INDEX intents_finished ON intents (finished_at) WHERE finished_at IS NOT NULL",
        """CREATE TABLE owned_triggers (
            workflow_id TEXT PRIMARY KEY,
            reason      TEXT NOT NULL,
            owned_at    TEXT NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE sightings (
            execution_id TEXT NOT NULL,
            node_id      TEXT NOT NULL,
            first_seen   TEXT NOT NULL,
            PRIMARY KEY (execution_id, node_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX sightings_first_seen ON sightings (first_seen)",
    ),
    # 2: the schedule runner's last tick gets its own table (it was a fake sighting of a
    # node "last-tick" under the pseudo-execution "schedules/<account>"); rows whose
    # outcome is still open are found by index (the resolver sweeps them).
    (
        """CREATE TABLE ticks (
            scope TEXT PRIMARY KEY,
            at    TEXT NOT NULL
        ) WITHOUT ROWID""",
        """INSERT INTO ticks (scope, at)
            SELECT execution_id, first_seen FROM sightings WHERE node_id = 'last-tick'""",
        "DELETE FROM sightings WHERE node_id = 'last-tick'",
        "CREATE INDEX intents_open ON intents (outcome) WHERE outcome IN ('pending', 'unknown')",
    ),
    # 3: trigger ownership per account, so two accounts with the same workflow id never
    # collide. Rows from before carry the account '' and count for every account until
    # one of them writes that workflow's ownership (with one account, exactly right).
    (
        """CREATE TABLE owned_triggers_3 (
            account     TEXT NOT NULL,
            workflow_id TEXT NOT NULL,
            reason      TEXT NOT NULL,
            owned_at    TEXT NOT NULL,
            PRIMARY KEY (account, workflow_id)
        ) WITHOUT ROWID""",
        """INSERT INTO owned_triggers_3 (account, workflow_id, reason, owned_at)
            SELECT '', workflow_id, reason, owned_at FROM owned_triggers""",
        "DROP TABLE owned_triggers",
        "ALTER TABLE owned_triggers_3 RENAME TO owned_triggers",
    ),
    # 4: overrides (``aomd override add``): a person's time-boxed exception, kept as a JSON
    # document (``daemon.kernel.overrides.Override``) so new fields need no migration.
    (
        """CREATE TABLE overrides (
            id    TEXT PRIMARY KEY,
            doc   TEXT NOT NULL,
            until TEXT NOT NULL
        ) WITHOUT ROWID""",
    ),
    # 5: compaction folds a day of repetitive rows (trigger toggles) into one that counts
    # them; retention prunes by the creation index, so the finished-at index (a copy of
    # every key, ~15 % of the file) goes. Incremental auto-vacuum is switched on when the
    # file is opened (``sqlite.enable_incremental_vacuum``): it cannot run in a transaction.
    (
        "ALTER TABLE intents ADD COLUMN repeats INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE intents ADD COLUMN first_at TEXT",
        "DROP INDEX intents_finished",
    ),
)
LATEST = len(MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def check_known(found: int, path: Path | str) -> None:
    if found > LATEST:
        raise JournalError(
            f"journal {path} has schema version {found}, but this aomd only knows up to "
            f"{LATEST}: it was written by a newer aomd. Upgrade aomd, or point "
            "journal.path at another file."
        )


def migrate(conn: sqlite3.Connection, path: Path | str) -> int:
    """Apply the missing steps, each atomically. ``conn`` must be in autocommit mode
    (``isolation_level=None``). Returns the version now in the file."""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read under the write lock: another process may have migrated meanwhile.
            current = version(conn)
            check_known(current, path)
            if current == LATEST:
                conn.execute("COMMIT")
                return current
            for statement in MIGRATIONS[current]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {current + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
