"""Pydantic models of the ``schedules`` policy section: when a schedule fires and what it does.

A schedule joins the two halves: its timing (cron or iCalendar, time zone, blocking
calendars) is what ``daemon.calendar.firetimes`` evaluates, through the ``ScheduleTiming``
protocol it declares, while the action (run a workflow, act on a DataArts task) is the
engine's to carry out. Keeping the action here keeps the calendar package about time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ModelWrapValidatorHandler, model_validator

from daemon.calendar.calendar_spec import (
    AccountNames,
    CalendarName,
    CronExpr,
    Duration,
    IcsSpec,
    ShiftSpec,
    TimeZoneName,
)
from daemon.calendar.spec_errors import also_when_invalid, exactly_one_raw
from daemon.kernel.actions import DataArtsAction

__all__ = ["ActionSpec", "DataArtsActionSpec", "ExecuteActionSpec", "ScheduleSpec"]

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_ONE_WORKFLOW = "give exactly one of 'workflow_id' or 'workflow_name'"
_ONE_ACTION = "give exactly one of 'execute' or 'dataarts'"
_ONE_SOURCE = "give exactly one of 'cron' or 'ics'"


class ExecuteActionSpec(BaseModel):
    """Run an AOM workflow."""

    model_config = _FROZEN

    workflow_id: str | None = Field(default=None, description="Workflow id to execute.")
    workflow_name: str | None = Field(
        default=None, description="Exact workflow name, resolved at run time."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_parameters(cls, data: Any) -> Any:
        """ExecuteWorkflow (API seed 002) documents no request body, so parameters would be
        either ignored or rejected by the cloud: say so at validation, not at 02:30."""
        if isinstance(data, dict) and "parameters" in data:
            raise ValueError(
                "'parameters' is not supported: the AOM ExecuteWorkflow API takes no request "
                "body, so a workflow runs with its own defaults; remove 'parameters'"
            )
        return data

    @model_validator(mode="wrap")
    @classmethod
    def _also_raw(
        cls, data: Any, handler: ModelWrapValidatorHandler[ExecuteActionSpec]
    ) -> ExecuteActionSpec:
        return also_when_invalid(
            data, handler, exactly_one_raw(data, "workflow_id", "workflow_name", _ONE_WORKFLOW)
        )

    @model_validator(mode="after")
    def _exactly_one(self) -> ExecuteActionSpec:
        if (self.workflow_id is None) == (self.workflow_name is None):
            raise ValueError(_ONE_WORKFLOW)
        return self


class DataArtsActionSpec(BaseModel):
    """Start, schedule or stop a DataArts Studio (metadata collection) task."""

    model_config = _FROZEN

    task_id: str = Field(min_length=1, description="DataArts task id.")
    action: DataArtsAction = Field(
        default="start", description="start: run once now; schedule: enable its schedule; stop."
    )
    workspace: str | None = Field(
        default=None, description="DataArts workspace id; defaults to the account's workspace."
    )


class ActionSpec(BaseModel):
    """What a schedule does when it fires: exactly one of ``execute`` or ``dataarts``."""

    model_config = _FROZEN

    execute: ExecuteActionSpec | None = Field(default=None, description="Run an AOM workflow.")
    dataarts: DataArtsActionSpec | None = Field(
        default=None, description="Act on a DataArts Studio task."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _also_raw(cls, data: Any, handler: ModelWrapValidatorHandler[ActionSpec]) -> ActionSpec:
        return also_when_invalid(
            data, handler, exactly_one_raw(data, "execute", "dataarts", _ONE_ACTION)
        )

    @model_validator(mode="after")
    def _exactly_one(self) -> ActionSpec:
        if (self.execute is None) == (self.dataarts is None):
            raise ValueError(_ONE_ACTION)
        return self

    def describe(self) -> str:
        """Short human text, e.g. ``execute workflow_name=backup``."""
        if self.execute is not None:
            ex = self.execute
            target = (
                f"workflow_id={ex.workflow_id}"
                if ex.workflow_id is not None
                else f"workflow_name={ex.workflow_name}"
            )
            return f"execute {target}"
        assert self.dataarts is not None
        da = self.dataarts
        ws = f" workspace={da.workspace}" if da.workspace else ""
        return f"dataarts {da.action} task_id={da.task_id}{ws}"


class ScheduleSpec(BaseModel):
    """Run work at the fire times of a cron expression or at the starts of iCalendar events."""

    model_config = _FROZEN

    name: str = Field(min_length=1, description="Unique schedule name; part of the run's key.")
    description: str | None = Field(default=None, description="Free text for people.")
    accounts: AccountNames = Field(
        default=(),
        description="Names of the accounts (settings [[accounts]] name) this schedule applies "
        "to; empty: every account.",
        examples=[["prod-cn"]],
    )
    cron: CronExpr | None = Field(
        default=None,
        description="Fire times as wall-clock time in 'timezone'. A time in a DST gap fires at "
        "the end of the gap; a time in a fall-back repeat fires once (first occurrence).",
        examples=["0 2 * * *"],
    )
    timezone: TimeZoneName = Field(default="UTC", description="IANA time zone of 'cron'.")
    ics: IcsSpec | None = Field(
        default=None, description="Fire at the start of each event occurrence instead of cron."
    )
    action: ActionSpec = Field(description="What to do at each fire time.")
    blocked_by: tuple[CalendarName, ...] = Field(
        default=(),
        description="Calendars during which a fire time is skipped (and recorded as skipped).",
    )
    misfire_grace_seconds: int = Field(
        default=300, ge=0, description="A run late by more than this is skipped as missed."
    )
    coalesce: bool = Field(
        default=True, description="Several missed fire times run once, not once each."
    )
    catch_up: Literal["skip", "once", "all"] = Field(
        default="skip",
        description="When the blocked_by calendars end: skip (blocked fire times stay "
        "skipped), once (run the latest blocked fire time once), all (run each blocked "
        "fire time once, oldest first). Only fire times since the last regular one and "
        "within catch_up_window count.",
    )
    catch_up_window: Duration = Field(
        default=timedelta(days=1),
        description="How old a blocked fire time may be and still be caught up.",
    )
    shift: ShiftSpec | None = Field(
        default=None,
        description="Move a fire time that lands on a non-business day (per a named "
        "calendar) to the same wall time on the next or previous business day.",
    )
    overlap: Literal["allow", "skip", "terminate_previous"] = Field(
        default="allow",
        description="execute only: when an execution of the workflow still runs at the "
        "fire time, allow another, skip this run (journaled), or terminate the running "
        "one first.",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _also_raw(cls, data: Any, handler: ModelWrapValidatorHandler[ScheduleSpec]) -> ScheduleSpec:
        return also_when_invalid(data, handler, exactly_one_raw(data, "cron", "ics", _ONE_SOURCE))

    @model_validator(mode="after")
    def _one_source(self) -> ScheduleSpec:
        if (self.cron is None) == (self.ics is None):
            raise ValueError(_ONE_SOURCE)
        if self.catch_up != "skip" and not self.blocked_by:
            raise ValueError(
                f"catch_up: {self.catch_up} needs blocked_by (the calendars whose end "
                "triggers the catch-up); add blocked_by or drop catch_up"
            )
        if self.overlap != "allow" and self.action.execute is None:
            raise ValueError(
                f"overlap: {self.overlap} applies to execute actions only; drop it for "
                "a dataarts action"
            )
        return self
