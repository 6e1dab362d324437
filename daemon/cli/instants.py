"""Times on the command line: ISO 8601 or a duration, for ``history`` and ``plan``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from daemon.kernel.errors import UsageError


def parse_instant(
    text: str | None,
    default: datetime,
    *,
    base: datetime | None = None,
    option: str = "time",
) -> datetime:
    """ISO-8601 (naive = UTC) or a duration like ``2h``/``7d``: counted back from
    ``default`` (``history --since 2h``), or forward from ``base`` when one is given
    (``plan --until 2d`` = two days after ``--from``)."""
    if not text:
        return default
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text[-1] in units and text[:-1].isdigit():
        span = timedelta(seconds=int(text[:-1]) * units[text[-1]])
        return base + span if base is not None else default - span
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"invalid {option} {text!r}: expected an ISO 8601 time like 2026-12-24T00:00 "
            "(naive = UTC) or a duration like 30m, 2h, 7d, 1w"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
