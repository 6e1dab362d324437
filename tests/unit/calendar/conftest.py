"""Calendar-test fixtures."""

from __future__ import annotations

import pytest

from daemon.calendar import Calendar
from tests.support.calendars import berlin_calendars


@pytest.fixture
def cals() -> dict[str, Calendar]:
    return berlin_calendars()
