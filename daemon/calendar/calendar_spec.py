"""Pydantic models for the ``calendars`` and ``triggers`` policy sections, and time field types.

Text comes in here and only here: every model is frozen and rejects unknown keys, and every
validator says what it expected, because these messages (and the field descriptions, which
feed ``aomd schema`` and editor completion) are what an operator sees when a file is wrong.
``daemon.calendar.build`` turns ``CalendarSpec`` into pure runtime ``Calendar`` values; the
trigger specs are already immutable and are used as they are. The ``schedules`` model
(``daemon.policy.schedule_spec``) reuses the time field types here (cron, time zone, iCalendar,
calendar name, duration) because a schedule also carries an action, which is not about time.
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ModelWrapValidatorHandler,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from daemon.calendar.spec_errors import also_when_invalid, exactly_one_raw

__all__ = [
    "CalendarSpec",
    "HolidaysSpec",
    "IcsSpec",
    "RangeSpec",
    "RecurringSpec",
    "ShiftSpec",
    "TriggerRuleSpec",
    "WorkflowSelector",
    "parse_duration",
]

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_ONE_TRIGGER_CALENDAR = "give exactly one of 'off_during' or 'on_only_during' (a calendar name)"
_CALENDAR_SOURCES = ("recurring", "ranges", "ics", "holidays", "any_of", "all_of")
_NO_SOURCE = (
    "a calendar needs at least one source; expected one or more of recurring, "
    "ranges, ics, holidays, any_of, all_of ('except' only subtracts)"
)
_CRON_EXPECTED = (
    "expected a 5-field cron expression 'minute hour day-of-month month day-of-week' "
    "such as '0 9 * * mon-fri', or @hourly/@daily/@weekly/@monthly/@yearly"
)
_DURATION_RE = re.compile(
    r"^\s*(?:(?P<d>\d+(?:\.\d+)?)\s*d)?\s*(?:(?P<h>\d+(?:\.\d+)?)\s*h)?\s*"
    r"(?:(?P<m>\d+(?:\.\d+)?)\s*m)?\s*(?:(?P<s>\d+(?:\.\d+)?)\s*s)?\s*$"
)


def _check_cron(value: str) -> str:
    text = value.strip()
    fields = text.split()
    if text.startswith("@"):
        ok = text in {
            "@hourly",
            "@daily",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
            "@midnight",
        }
    else:
        ok = len(fields) == 5 and croniter.is_valid(text)
    if not ok:
        raise ValueError(f"invalid cron expression {_shorten(value)!r}; {_CRON_EXPECTED}")
    backwards = None if text.startswith("@") else _backwards_range(fields)
    if backwards is not None:
        low, high = backwards.split("-", 1)
        raise ValueError(
            f"invalid cron expression {value!r}: range {backwards!r} runs backwards (croniter "
            f"would wrap it around, cron rejects it); expected low-high, e.g. "
            f"'{low}-<last>,<first>-{high}' for a range that wraps"
        )
    return text


_CRON_NAMES = {
    name: i
    for names in (
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        ("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
    )
    for i, name in enumerate(names, start=1 if names[0] == "jan" else 0)
}


def _backwards_range(fields: list[str]) -> str | None:
    """The first ``a-b`` with ``a > b`` in any field: croniter reads ``1-0`` as every minute
    and ``31-1`` with repeated fire times, which is never what was meant."""
    for field in fields:
        for part in field.split(","):
            span = part.split("/", 1)[0]
            if "-" not in span:
                continue
            low, high = (
                _CRON_NAMES.get(x.lower()) if x.isalpha() else x for x in span.split("-", 1)
            )
            try:
                if int(str(low)) > int(str(high)):
                    return span
            except ValueError:
                continue
    return None


def _shorten(value: str) -> str:
    return value if len(value) <= 80 else f"{value[:77]}..."


_TZ_NAME = re.compile(r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+){0,3}$")


def _check_timezone(value: str) -> str:
    # ZoneInfo raises OSError for names over 255 bytes and recurses on Europe/Berlin/x/...,
    # so only names shaped like an IANA name reach it.
    try:
        if len(value) > 64 or not _TZ_NAME.match(value):
            raise ZoneInfoNotFoundError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError, RecursionError) as exc:
        hint = difflib.get_close_matches(value[:64], sorted(available_timezones()), n=3)
        more = f" (did you mean {', '.join(hint[:3])}?)" if hint else ""
        raise ValueError(
            f"unknown time zone {_shorten(value)!r}; expected an IANA name such as 'UTC', "
            f"'Europe/Berlin' or 'Asia/Shanghai'{more}"
        ) from exc
    return value


def parse_duration(value: object) -> object:
    """Accept ``8h``, ``1h30m``, ``2d``, ``90s``, ISO 8601 ``PT8H`` or a number of seconds."""
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match and any(match.groupdict().values()):
            parts = {k: float(v) for k, v in match.groupdict().items() if v}
            try:
                return timedelta(
                    days=parts.get("d", 0.0),
                    hours=parts.get("h", 0.0),
                    minutes=parts.get("m", 0.0),
                    seconds=parts.get("s", 0.0),
                )
            except OverflowError:
                raise ValueError(
                    f"duration {_shorten(value)!r} is too long; expected at most "
                    "999999999 days (and in practice far less)"
                ) from None
        if not value.strip().upper().startswith("P"):
            raise ValueError(
                f"invalid duration {_shorten(value)!r}; expected e.g. '8h', '1h30m', '2d', '90s', "
                "an ISO 8601 duration 'PT8H' or a number of seconds"
            )
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("duration must be positive; expected e.g. '8h'")
    return value


CronExpr = Annotated[str, AfterValidator(_check_cron)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(_positive),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "examples": ["8h", "1h30m", "2d", "PT8H"]},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "A positive duration: '8h', '1h30m', '2d', '90s', ISO 8601 or seconds.",
        }
    ),
]
CalendarName = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")]


def _names(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


AccountNames = Annotated[tuple[str, ...], BeforeValidator(_names)]
"""``accounts:`` of a rule, trigger rule or schedule: one name or a list."""


class RecurringSpec(BaseModel):
    """A window that opens at every fire time of a cron expression and lasts ``duration``."""

    model_config = _FROZEN

    cron: CronExpr = Field(
        description="When each window starts, as wall-clock time in the calendar's time zone. "
        "A start that falls in a DST spring-forward gap opens at the end of the gap "
        "(02:30 on a 02:00->03:00 day opens at 03:00); in a fall-back repeat the first "
        "occurrence is used.",
        examples=["0 9 * * mon-fri", "0 22 * * sat"],
    )
    duration: Duration = Field(
        description="How long each window lasts, in elapsed (absolute) time: a 2h window that "
        "starts at 01:30 on a fall-back night ends at 02:30 of the repeated hour."
    )


class RangeSpec(BaseModel):
    """One explicit interval ``[start, end)``."""

    model_config = _FROZEN

    start: datetime = Field(
        description="Start (inclusive). Without an offset it is wall-clock time in the calendar's "
        "time zone; with an offset (or Z) it is that exact instant.",
        examples=["2026-12-20T00:00:00", "2026-12-20T00:00:00+01:00"],
    )
    end: datetime = Field(description="End (exclusive); must be after start.")


class IcsSpec(BaseModel):
    """An iCalendar source: each VEVENT occurrence is a window (or a fire time, for schedules)."""

    model_config = _FROZEN

    path: str | None = Field(
        default=None,
        description="Path to a .ics file, relative to the directory of the policy file.",
    )
    text: str | None = Field(
        default=None, description="Inline iCalendar text (BEGIN:VCALENDAR ... END:VCALENDAR)."
    )
    summary: str | None = Field(
        default=None,
        description="Only use events whose SUMMARY matches this shell-style glob, e.g. 'Freeze*'.",
    )
    strict: bool = Field(
        default=True,
        description="true: a bad event (no DTSTART, a duplicate DTSTART, an end before the "
        "start, a broken RRULE...) rejects the file, naming the event; false: bad events are "
        "skipped with a warning and the rest is used.",
    )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The schema must accept the plain-string shorthand ``_shorthand`` accepts, or an
        editor marks ``ics: maintenance.ics`` red while ``aomd validate`` says ok."""
        return {
            "anyOf": [
                {
                    "type": "string",
                    "minLength": 1,
                    "description": "A .ics path (relative to the policy file) or inline "
                    "iCalendar text starting with BEGIN:VCALENDAR.",
                },
                handler(core_schema),
            ]
        }

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"text": data} if "BEGIN:VCALENDAR" in data.upper() else {"path": data}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> IcsSpec:
        if (self.path is None) == (self.text is None):
            raise ValueError(
                "give exactly one of 'path' (a .ics file) or 'text' (inline iCalendar)"
            )
        return self


class HolidaysSpec(BaseModel):
    """Public holidays of a country (and optionally a subdivision); each is a whole local day."""

    model_config = _FROZEN

    country: str = Field(
        description="ISO 3166-1 alpha-2 country code as known to the 'holidays' package.",
        examples=["DE", "CN", "US"],
    )
    subdivision: str | None = Field(
        default=None,
        description="State/province code, e.g. 'BY' for Bavaria or 'NY' for New York.",
        examples=["BY", "NY"],
    )

    @model_validator(mode="after")
    def _known(self) -> HolidaysSpec:
        import holidays  # local: the country table is large and only needed here

        supported: dict[str, list[str]] = holidays.list_supported_countries()
        if self.country not in supported:
            raise ValueError(
                f"unknown country {self.country!r}; expected an ISO 3166-1 alpha-2 code "
                f"supported by the 'holidays' package, e.g. DE, CN, US, GB, FR"
            )
        subs = supported[self.country]
        if self.subdivision is not None and self.subdivision not in subs:
            listed = ", ".join(subs[:40]) or "none (omit 'subdivision')"
            raise ValueError(
                f"unknown subdivision {self.subdivision!r} for {self.country}; expected one of: "
                f"{listed}"
            )
        return self


class CalendarSpec(BaseModel):
    """A named set of time windows.

    The windows are the union of every source given (``recurring``, ``ranges``, ``ics``,
    ``holidays``, ``any_of``), then intersected with each calendar in ``all_of`` (when only
    ``all_of`` is given it is the plain intersection), then minus every calendar in ``except``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    timezone: TimeZoneName = Field(
        default="UTC",
        description="IANA time zone for cron times, naive dates and all-day holidays/events.",
        examples=["Europe/Berlin", "America/New_York", "Asia/Shanghai"],
    )
    description: str | None = Field(default=None, description="Free text for people.")
    recurring: tuple[RecurringSpec, ...] = Field(
        default=(), description="Recurring windows: a cron start plus a duration."
    )
    ranges: tuple[RangeSpec, ...] = Field(default=(), description="Explicit date-time ranges.")
    ics: IcsSpec | None = Field(
        default=None,
        description="An iCalendar file path (relative to the policy file) or inline text; "
        "RRULE, RDATE, EXDATE, RECURRENCE-ID and VTIMEZONE are honoured.",
    )
    holidays: HolidaysSpec | None = Field(
        default=None, description="Public holidays; each holiday is the whole local day."
    )
    any_of: tuple[CalendarName, ...] = Field(
        default=(), description="Union: also active whenever any of these calendars is."
    )
    all_of: tuple[CalendarName, ...] = Field(
        default=(), description="Intersection: only active while all of these calendars are."
    )
    except_: tuple[CalendarName, ...] = Field(
        default=(),
        alias="except",
        description="Difference: never active while any of these calendars is.",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _also_raw(cls, data: Any, handler: ModelWrapValidatorHandler[CalendarSpec]) -> CalendarSpec:
        empty = isinstance(data, dict) and not any(data.get(k) for k in _CALENDAR_SOURCES)
        return also_when_invalid(data, handler, _NO_SOURCE if empty else None)

    @model_validator(mode="after")
    def _has_base(self) -> CalendarSpec:
        if not (
            self.recurring or self.ranges or self.ics or self.holidays or self.any_of or self.all_of
        ):
            raise ValueError(_NO_SOURCE)
        return self


class ShiftSpec(BaseModel):
    """Move a fire time off a non-business day (Control-M's confirmation calendar).

    Give exactly one calendar: ``avoid`` (active = not a business day, e.g. holidays) or
    ``within`` (active = business time). A fire time is moved by whole local days,
    keeping its wall time, until it falls on a business instant; at most 31 days.
    """

    model_config = _FROZEN

    to: Literal["next_business_day", "previous_business_day"] = Field(
        description="Direction of the move."
    )
    avoid: CalendarName | None = Field(
        default=None, description="Calendar whose active time is not business time."
    )
    within: CalendarName | None = Field(
        default=None, description="Calendar whose active time is business time."
    )

    @model_validator(mode="after")
    def _one_calendar(self) -> ShiftSpec:
        if (self.avoid is None) == (self.within is None):
            raise ValueError("shift: give exactly one of 'avoid' or 'within' (a calendar name)")
        return self

    @property
    def calendar(self) -> str:
        name = self.avoid if self.avoid is not None else self.within
        assert name is not None  # guaranteed by _one_calendar
        return name


class WorkflowSelector(BaseModel):
    """Which workflows a trigger rule manages; every criterion given must match."""

    model_config = _FROZEN

    ids: tuple[str, ...] = Field(default=(), description="Workflow ids; any one may match.")
    names: tuple[str, ...] = Field(
        default=(),
        description="Shell-style globs on the workflow name (case-sensitive); any one may match.",
        examples=[["patch-*", "backup-db"]],
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Tags the workflow must all carry; values are shell-style globs.",
        examples=[{"team": "ops", "env": "prod*"}],
    )

    @model_validator(mode="after")
    def _not_empty(self) -> WorkflowSelector:
        if not (self.ids or self.names or self.tags):
            raise ValueError(
                "select needs at least one of ids, names, tags; use names: ['*'] for every workflow"
            )
        return self


class FailureStreakSpec(BaseModel):
    """Disable a cron workflow's trigger after ``count`` failed executions within ``within``."""

    model_config = _FROZEN

    count: int = Field(ge=1, description="Failed executions that make a streak.")
    within: Duration = Field(
        default=timedelta(hours=24), description="The window the failures must fall in."
    )


class TriggerRuleSpec(BaseModel):
    """Enable/disable the cron triggers of matching workflows on a calendar.

    Every rule whose ``select`` matches a workflow counts: its trigger is on only while
    each of them allows it (deny beats allow; ``daemon.calendar.desired.verdict``).
    """

    model_config = _FROZEN

    name: str = Field(
        min_length=1, description="Unique rule name; appears in logs and the journal."
    )
    description: str | None = Field(default=None, description="Free text for people.")
    select: WorkflowSelector = Field(description="Which workflows this rule manages.")
    accounts: AccountNames = Field(
        default=(),
        description="Names of the accounts (settings [[accounts]] name) this trigger rule applies "
        "to; empty: every account.",
        examples=[["prod-cn"]],
    )
    off_during: CalendarName | None = Field(
        default=None,
        description="Trigger disabled while this calendar is active, enabled otherwise.",
    )
    on_only_during: CalendarName | None = Field(
        default=None, description="Trigger enabled only while this calendar is active."
    )
    manage: Literal["owned", "full"] = Field(
        default="owned",
        description="owned: only re-enable triggers aomd itself disabled; full: enforce the "
        "desired state whoever changed it.",
    )
    pause_after_failures: FailureStreakSpec | None = Field(
        default=None,
        description="After this many failed executions of a selected cron workflow within "
        "the window, disable its trigger (owned, journaled, notified) until a person "
        "re-enables it; only failures after that count again.",
    )
    drift: Literal["correct", "report"] = Field(
        default="correct",
        description="correct: change the trigger when observed differs from desired; report: "
        "only log and count the drift.",
    )

    overlap_ok: bool = Field(
        default=False,
        description="This rule is meant to combine with others that select the same "
        "workflows (deny beats allow): 'aomd validate' does not warn about the overlap.",
    )
    on_release: Literal["none", "run_once"] = Field(
        default="none",
        description="run_once: when aomd re-enables a trigger it disabled, run the workflow "
        "once if a fire of trigger_cron fell while it was off (before re-enabling, so a "
        "restart never runs it twice).",
    )
    trigger_cron: CronExpr | None = Field(
        default=None,
        description="The workflows' trigger schedule, for on_release (AOM's API does not "
        "publish it).",
    )
    trigger_timezone: TimeZoneName = Field(
        default="UTC", description="IANA time zone of trigger_cron."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _also_raw(
        cls, data: Any, handler: ModelWrapValidatorHandler[TriggerRuleSpec]
    ) -> TriggerRuleSpec:
        raw = exactly_one_raw(data, "off_during", "on_only_during", _ONE_TRIGGER_CALENDAR)
        return also_when_invalid(data, handler, raw)

    @model_validator(mode="after")
    def _one_calendar(self) -> TriggerRuleSpec:
        if (self.off_during is None) == (self.on_only_during is None):
            raise ValueError(_ONE_TRIGGER_CALENDAR)
        if self.on_release == "run_once" and self.trigger_cron is None:
            raise ValueError(
                "on_release: run_once needs trigger_cron, the workflows' trigger schedule "
                "(AOM's API does not publish it), e.g. trigger_cron: '0 2 * * *'"
            )
        return self

    @property
    def calendar(self) -> str:
        """The calendar this rule follows."""
        name = self.off_during if self.off_during is not None else self.on_only_during
        assert name is not None  # guaranteed by _one_calendar
        return name
