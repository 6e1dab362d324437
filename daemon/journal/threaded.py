"""A store whose connection lives on one worker thread, for the blocking drivers.

sqlite3 and psycopg's sync API block; a single worker thread keeps the event loop free
and serialises the calls without a lock (one connection, one thread). The SQLite and
PostgreSQL stores differ only in how they connect and run one transaction.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from daemon.journal.core import JournalBase


class OneThreadJournal(JournalBase):
    """Opens its connection on a worker thread of its own and closes it there."""

    _conn: Any = None
    _pool: ThreadPoolExecutor | None = None

    @abstractmethod
    def _connect(self) -> Any:
        """Open (and migrate) the connection; runs on the worker thread."""

    def _close_conn(self, conn: Any) -> None:
        conn.close()

    async def open(self) -> None:
        if self._conn is not None:
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aomd-journal")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(pool, self._connect)
        except BaseException:
            pool.shutdown(wait=False)
            raise
        self._conn, self._pool = conn, pool

    async def close(self) -> None:
        conn, pool = self._conn, self._pool
        self._conn = self._pool = None
        if conn is None or pool is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(pool, self._close_conn, conn)
        finally:
            pool.shutdown(wait=True)
