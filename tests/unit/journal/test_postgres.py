"""What only the shared PostgreSQL journal has to prove: replicas racing for one key get
one winner (the database decides, not Python), migrations run once however many replicas
open it, and the password never shows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from daemon.journal.postgres import LATEST, PostgresJournal, redact_url
from daemon.kernel.errors import ConfigError, JournalError
from daemon.kernel.writes import WriteIntent
from daemon.settings import JournalSettings
from tests.support.clocks import T0
from tests.support.postgres import PostgresServer


def _intent(n: int) -> WriteIntent:
    return WriteIntent(key=f"exec/e{n}/n/restart/1", kind="restart", workflow_id="w")


async def test_two_replicas_claiming_the_same_keys_get_one_winner_each(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.new_database()
    a, b = PostgresJournal(url), PostgresJournal(url)
    await asyncio.gather(a.open(), b.open())
    try:
        for n in range(40):
            got = await asyncio.gather(a.begin(_intent(n), T0), b.begin(_intent(n), T0))
            assert sorted(got, key=str) == [None, "pending"], (n, got)
        rows = await a.history()
        assert len(rows) == 40
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_migrations_run_once_for_many_replicas_and_a_newer_schema_is_refused(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.new_database()
    journals = [PostgresJournal(url) for _ in range(4)]
    await asyncio.gather(*(j.open() for j in journals))
    await asyncio.gather(*(j.close() for j in journals))
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM aomd_schema").fetchall() == [(LATEST,)]
        conn.execute("UPDATE aomd_schema SET version = %s", (LATEST + 1,))
    with pytest.raises(JournalError, match="written by a newer aomd"):
        await PostgresJournal(url).open()


async def test_the_password_never_shows(postgres_server: PostgresServer, tmp_path: Path) -> None:
    secret = "pg-secret-never-printed-41b7"
    wrong = f"postgresql://nobody:{secret}@127.0.0.1:{postgres_server.port}/nope"
    assert secret not in redact_url(wrong)
    journal = PostgresJournal(
        f"postgresql://nobody@127.0.0.1:{postgres_server.port}/nope", password=secret
    )
    assert secret not in repr(journal)
    with pytest.raises(JournalError) as caught:
        await journal.open()
    assert secret not in str(caught.value)
    with pytest.raises(ValueError, match="password_file"):
        JournalSettings(url=wrong)
    (tmp_path / "pw").write_text(f"{secret}\n")
    js = JournalSettings(url="postgresql://aomd@db/aomd", password_file=tmp_path / "pw")
    assert js.password() == secret
    with pytest.raises(ConfigError, match=r"journal\.password_file"):
        JournalSettings(url="postgresql://aomd@db/aomd", password_file=tmp_path / "x").password()
    with pytest.raises(ValueError, match="PostgreSQL URL"):
        JournalSettings(url="mysql://db/aomd")
