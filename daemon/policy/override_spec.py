"""The ``overrides`` policy section: time-boxed exceptions kept in Git (GitOps).

The same override ``aomd override add`` journals, written down instead. ``until`` is
mandatory: an exception without an end is a policy change, and belongs in the rules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from daemon.calendar.calendar_spec import CalendarName
from daemon.kernel.overrides import Override, OverrideTarget

__all__ = ["OverrideSpec"]


class OverrideSpec(BaseModel):
    """Force a workflow's trigger, a rule or a calendar until a time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$",
        description="Unique id; appears in logs, plan, status and history.",
    )
    workflow: str | None = Field(default=None, description="Workflow id to override.")
    rule: str | None = Field(default=None, description="Trigger or execution rule name.")
    calendar: CalendarName | None = Field(default=None, description="Calendar name.")
    state: Literal["on", "off", "hold"] = Field(
        description="on/off: force the trigger, the rule's vote or the calendar's activity; "
        "hold: leave the workflow (or the rule's workflows) alone, stops included."
    )
    from_: datetime | None = Field(
        default=None,
        alias="from",
        description="When it starts (naive = UTC); default: in force until 'until'.",
    )
    until: datetime = Field(description="Mandatory expiry (naive = UTC).")
    ticket: str = Field(default="", description="Change ticket, e.g. CHG-123.")
    reason: str = Field(default="", description="Why, for people.")

    @field_validator("state", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: object) -> object:
        """YAML 1.1 reads a bare ``on``/``off`` as true/false: take them as meant."""
        if value is True:
            return "on"
        if value is False:
            return "off"
        return value

    @model_validator(mode="after")
    def _one_target(self) -> OverrideSpec:
        given = [x for x in (self.workflow, self.rule, self.calendar) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'workflow', 'rule' or 'calendar'")
        if self.calendar is not None and self.state == "hold":
            raise ValueError("a calendar override is 'on' or 'off'; 'hold' is for workflows/rules")
        if self.from_ is not None and _utc(self.from_) >= _utc(self.until):
            raise ValueError("'until' must be after 'from'")
        return self

    def to_override(self, where: str) -> Override:
        kind: OverrideTarget
        if self.workflow is not None:
            kind, target = "workflow", self.workflow
        elif self.rule is not None:
            kind, target = "rule", self.rule
        else:
            kind, target = "calendar", self.calendar or ""
        return Override(
            id=self.id,
            target_kind=kind,
            target=target,
            state=self.state,
            until=_utc(self.until),
            start=None if self.from_ is None else _utc(self.from_),
            ticket=self.ticket,
            reason=self.reason,
            who=f"policy:{where}",
        )


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
