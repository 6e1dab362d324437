"""Pydantic models of a policy file: ``rules``, ``calendars``, ``triggers``, ``schedules``, ``notify``.

Text enters aomd here and only here. Every model rejects unknown keys (a typo such as
``max_attempt`` must be an error, not a silently ignored setting) and every validator says
what it expected, because these messages and the field descriptions (which feed
``aomd schema`` and editor completion) are what an operator sees. The calendar and trigger
sections reuse the models of ``daemon.calendar.calendar_spec``, the schedule section those of
``daemon.policy.schedule_spec``. ``daemon.policy.rule``
turns ``RuleSpec`` into the frozen ``Rule`` that ``decide`` sees, so the pure core never
touches pydantic.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from daemon.calendar.calendar_spec import (
    CalendarName,
    CalendarSpec,
    Duration,
    TriggerRuleSpec,
    parse_duration,
)
from daemon.calendar.spec_errors import also_when_invalid, exactly_one_raw
from daemon.kernel.actions import ActionKind, FallbackKind
from daemon.policy.output_regex import compile_output_regex
from daemon.policy.override_spec import OverrideSpec
from daemon.policy.schedule_spec import ScheduleSpec

__all__ = [
    "BackoffSpec",
    "CalendarGateSpec",
    "MatchSpec",
    "NodeMatchSpec",
    "NotifySpec",
    "PolicyFile",
    "RuleSpec",
    "WorkflowMatchSpec",
]

_FROZEN = ConfigDict(extra="forbid", frozen=True)
NodeState = Literal["failed", "paused", "running"]
_ACTIONS = get_args(ActionKind)
_ONE_GATE = "give exactly one of 'inside' or 'outside' (a calendar name)"
_DEFAULT_STATUS: dict[str, tuple[str, ...]] = {
    "restart": ("failed",),
    "skip": ("failed",),
    "continue": ("paused",),
}


def _non_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("duration must not be negative; expected e.g. '0s', '10m'")
    return value


def _check_regex(value: str) -> str:
    compile_output_regex(value)  # RegexRejected is a ValueError: pydantic reports it
    return value


def _check_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(
            f"invalid webhook URL {value!r}; expected an http:// or https:// URL such as "
            "'https://hooks.example.com/aomd'"
        )
    return value


def _as_tuple(value: Any) -> Any:
    """Accept a single value where a list is expected (``status: failed``)."""
    if isinstance(value, str):
        return (value,)
    return value


NonNegativeDuration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(_non_negative),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "examples": ["0s", "10m", "1h30m", "PT10M"]},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: '10m', '1h30m', '2d', '90s', ISO 8601 or seconds.",
        }
    ),
]
Regex = Annotated[str, AfterValidator(_check_regex)]
WebhookUrl = Annotated[str, AfterValidator(_check_url)]
RuleName = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")]
CountingName = Annotated[str, Field(min_length=1)]
"""A calendar whose active time is what a duration counts (``counting: working-time``)."""


def _counted(field: str) -> Any:
    """``delay: {duration: 2h, counting: working-time}`` -> ``delay`` + ``delay_counting``."""

    def split(data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get(field), dict):
            inner = dict(data[field])
            unknown = set(inner) - {"duration", "counting"}
            if unknown or "duration" not in inner:
                raise ValueError(
                    f"{field}: expected a duration or {{duration: <duration>, counting: "
                    f"<calendar>}}, got keys {sorted(inner)}"
                )
            data = {**data, field: inner["duration"]}
            if inner.get("counting") not in (None, "wall"):
                data[f"{field}_counting"] = inner["counting"]
        return data

    return split


class WorkflowMatchSpec(BaseModel):
    """Which workflows a rule applies to; every criterion given must match."""

    model_config = _FROZEN

    ids: tuple[str, ...] = Field(default=(), description="Workflow ids; any one may match.")
    name: str | None = Field(
        default=None,
        description="Shell-style glob on the workflow name (case-sensitive).",
        examples=["patch-*"],
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Tags the workflow must all carry; values are shell-style globs.",
        examples=[{"team": "ops", "env": "prod*"}],
    )


class NodeMatchSpec(BaseModel):
    """Which node of the execution; every criterion given must match."""

    model_config = _FROZEN

    id: str | None = Field(default=None, description="Exact node id.")
    name: str | None = Field(
        default=None,
        description="Shell-style glob on the node name from the workflow definition.",
        examples=["patch-*"],
    )
    category: str | None = Field(
        default=None,
        description="Shell-style glob on the node category from the workflow definition "
        "(AOM node types; a node whose workflow or category is unknown does not match).",
        examples=["script", "job*"],
    )


def _clock_time(value: Any) -> Any:
    """``"06:00 Europe/Berlin"`` (zone optional: UTC) -> the same text, checked."""
    if not isinstance(value, str):
        raise ValueError("expected 'HH:MM Zone', e.g. '06:00 Europe/Berlin'")
    parse_clock_time(value)
    return value


def parse_clock_time(value: str) -> tuple[int, int, str]:
    """(hour, minute, IANA zone) of ``"HH:MM[ Zone]"``; ValueError naming what is wrong."""
    parts = value.split()
    if len(parts) not in (1, 2):
        raise ValueError(f"expected 'HH:MM Zone', e.g. '06:00 Europe/Berlin', got {value!r}")
    hh, sep, mm = parts[0].partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise ValueError(f"expected a time HH:MM (00:00-23:59), got {parts[0]!r}")
    zone = parts[1] if len(parts) == 2 else "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {zone!r}; expected an IANA name") from exc
    return int(hh), int(mm), zone


ClockTime = Annotated[str, BeforeValidator(_clock_time)]


class MatchSpec(BaseModel):
    """When a rule applies to a stopped node. Omitted criteria match everything."""

    model_config = _FROZEN

    workflow: WorkflowMatchSpec = Field(
        default_factory=WorkflowMatchSpec, description="Workflow criteria."
    )
    node: NodeMatchSpec = Field(default_factory=NodeMatchSpec, description="Node criteria.")
    not_finished_by: ClockTime | None = Field(
        default=None,
        description="Match only an execution still not finished at the first such clock "
        "time after it began ('06:00 Europe/Berlin'; zone optional, UTC): Control-M's "
        "'not finished by'. Usually with status running and action notify or terminate.",
        examples=["06:00 Europe/Berlin"],
    )
    status: Annotated[
        tuple[NodeState, ...],
        BeforeValidator(_as_tuple),
        WithJsonSchema(
            {
                "anyOf": [
                    {"enum": ["failed", "paused", "running"]},
                    {
                        "type": "array",
                        "items": {"enum": ["failed", "paused", "running"]},
                        "minItems": 1,
                    },
                ]
            }
        ),
    ] = Field(
        default=("failed", "paused"),
        min_length=1,
        description="Node state: 'failed' (a node failed and the execution waits) and/or "
        "'paused' (a pause node waits for 'continue'); 'running' (opt-in, only with action "
        "terminate or notify) matches a still running execution, e.g. with min_age to stop "
        "overlong runs. A single value or a list. Default by action: restart/skip -> failed, "
        "continue -> paused, terminate/notify -> failed and paused.",
        examples=["failed", ["failed", "paused"]],
    )
    output_regex: Regex | None = Field(
        default=None,
        description="RE2 regular expression searched in the node's output values (linear "
        "time: no backreferences or lookarounds); output over 64 KiB is searched in its first "
        "and last 32 KiB.",
        examples=["(?i)timeout|connection reset"],
    )
    min_age: NonNegativeDuration | None = Field(
        default=None, description="Only executions at least this old (since their start)."
    )
    max_age: NonNegativeDuration | None = Field(
        default=None, description="Only executions at most this old (since their start)."
    )

    @model_validator(mode="after")
    def _ages(self) -> MatchSpec:
        if self.min_age is not None and self.max_age is not None and self.max_age < self.min_age:
            raise ValueError("max_age is shorter than min_age; expected min_age <= max_age")
        return self


class BackoffSpec(BaseModel):
    """Wait between attempts: ``initial * factor**(n-1)`` capped at ``max``, plus jitter."""

    model_config = _FROZEN

    initial: Duration = Field(
        default=timedelta(seconds=30), description="Wait before the 2nd attempt."
    )
    factor: float = Field(default=2.0, gt=0, description="Multiplier per further attempt.")
    max: Duration = Field(default=timedelta(minutes=10), description="Cap of the wait.")
    counting: CountingName | None = Field(
        default=None,
        description="Count only time inside this calendar (e.g. working-time); default: "
        "wall-clock time.",
    )
    jitter: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Extra wait of up to this fraction of the wait; derived deterministically "
        "from the idempotency key, so every replica computes the same time.",
    )


class CalendarGateSpec(BaseModel):
    """Act only while a named calendar is active (``inside``) or inactive (``outside``)."""

    model_config = _FROZEN

    inside: CalendarName | None = Field(
        default=None, description="Act only while this calendar is active."
    )
    outside: CalendarName | None = Field(
        default=None, description="Act only while this calendar is not active."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _also_raw(
        cls, data: Any, handler: ModelWrapValidatorHandler[CalendarGateSpec]
    ) -> CalendarGateSpec:
        return also_when_invalid(
            data, handler, exactly_one_raw(data, "inside", "outside", _ONE_GATE)
        )

    @model_validator(mode="after")
    def _exactly_one(self) -> CalendarGateSpec:
        if (self.inside is None) == (self.outside is None):
            raise ValueError(_ONE_GATE)
        return self

    @property
    def name(self) -> str:
        name = self.inside if self.inside is not None else self.outside
        assert name is not None  # guaranteed by _exactly_one
        return name


class RuleSpec(BaseModel):
    """What to do with a failed or paused node. Rules are tried in file order; first match wins."""

    model_config = _FROZEN

    name: RuleName = Field(description="Unique rule name; appears in logs, keys and the journal.")
    description: str | None = Field(default=None, description="Free text for people.")
    match: MatchSpec = Field(default_factory=MatchSpec, description="When this rule applies.")
    accounts: Annotated[tuple[str, ...], BeforeValidator(_as_tuple)] = Field(
        default=(),
        description="Names of the accounts (settings [[accounts]] name) this rule applies "
        "to; empty: every account.",
        examples=[["prod-cn"]],
    )
    action: ActionKind = Field(
        description="restart (retry the failed node), skip (skip it), continue (resume a pause "
        "node), terminate (stop the execution) or notify (only tell a human)."
    )
    max_attempts: int = Field(
        default=3, ge=1, le=100, description="How many times the action may be sent per node."
    )
    backoff: BackoffSpec = Field(default_factory=BackoffSpec, description="Wait between attempts.")
    delay: NonNegativeDuration = Field(
        default=timedelta(0),
        description="Act only once the node has been stopped this long (e.g. continue a pause "
        "node after 10m).",
    )
    deadline: Duration | None = Field(
        default=None,
        description="Execution age (since its start) after which no more attempts are made "
        "and the fallback applies.",
    )
    delay_counting: CountingName | None = Field(
        default=None,
        description="Calendar whose active time 'delay' counts (written as delay: {duration: "
        "2h, counting: working-time}); default: wall-clock time.",
    )
    deadline_counting: CountingName | None = Field(
        default=None,
        description="Calendar whose active time 'deadline' counts (written as deadline: "
        "{duration: 8h, counting: working-time}); default: wall-clock time.",
    )
    fallback: FallbackKind = Field(
        default="leave",
        description="When attempts or the deadline run out: skip the node, terminate the "
        "execution, or leave it for a human (sends a notification once).",
    )
    dry_run: bool = Field(default=False, description="Decide and log, but never write.")
    notify: bool | WebhookUrl | None = Field(
        default=None,
        description="Notifications: unset = when giving up, terminating or notify actions (to "
        "the global webhook); true = for every action; false = never; a URL = every action, "
        "to this webhook.",
    )
    calendar: CalendarGateSpec | None = Field(
        default=None, description="Act only inside or outside a named calendar."
    )

    @model_validator(mode="before")
    @classmethod
    def _counting(cls, data: Any) -> Any:
        """``delay``/``deadline`` as ``{duration, counting}`` (time inside a calendar)."""
        return _counted("deadline")(_counted("delay")(data))

    @model_validator(mode="before")
    @classmethod
    def _default_status(cls, data: Any) -> Any:
        """``restart``/``skip`` only make sense for failed nodes, ``continue`` only for pause
        nodes (assumed: the API does not publish it), so an omitted ``match.status`` follows the action."""
        if isinstance(data, dict) and isinstance(data.get("action"), str):
            match = data.get("match", {})
            if isinstance(match, dict) and "status" not in match:
                status = _DEFAULT_STATUS.get(data["action"], ("failed", "paused"))
                data = {**data, "match": {**match, "status": status}}
        return data

    @model_validator(mode="wrap")
    @classmethod
    def _also_raw(cls, data: Any, handler: ModelWrapValidatorHandler[RuleSpec]) -> RuleSpec:
        """A bad field elsewhere in the rule must not hide a combination the API rejects."""
        problem = None
        if isinstance(data, dict) and data.get("action") in _ACTIONS:
            match = data.get("match")
            raw = match.get("status") if isinstance(match, dict) else None
            status = _as_tuple(raw) if raw is not None else None
            if status is None:
                status = _DEFAULT_STATUS.get(data["action"], ("failed", "paused"))
            fallback = data.get("fallback", "leave")
            if isinstance(status, tuple | list) and all(isinstance(x, str) for x in status):
                problem = _combination_problem(data["action"], tuple(status), fallback, False)
        return also_when_invalid(data, handler, problem)

    @model_validator(mode="after")
    def _running_actions(self) -> RuleSpec:
        problem = _combination_problem(
            self.action, self.match.status, self.fallback, self.delay > timedelta(0)
        )
        if problem is not None:
            raise ValueError(problem)
        return self


def _combination_problem(
    action: str, status: tuple[str, ...], fallback: object, has_delay: bool
) -> str | None:
    """Combinations the API would reject (API.md: restart/skip act on failed nodes,
    continue on pause nodes) or that cannot mean anything."""
    if "running" in status and action not in ("terminate", "notify"):
        return (
            f"match.status 'running' cannot be combined with action {action!r}; "
            "expected action terminate or notify for running executions"
        )
    if action in ("restart", "skip") and "paused" in status:
        return (
            f"action {action!r} applies to failed nodes only (a pause node can only "
            "be continued); expected match.status: failed"
        )
    if action == "continue" and "failed" in status:
        return "action 'continue' applies to pause nodes only; expected match.status: paused"
    if fallback == "skip" and "paused" in status:
        return (
            "fallback 'skip' applies to failed nodes only; expected fallback terminate or "
            "leave for rules matching paused nodes"
        )
    if "running" in status and has_delay:
        return (
            "delay applies to stopped nodes; expected match.min_age instead of delay for "
            "'running' rules"
        )
    return None


class NotifySpec(BaseModel):
    """Global notification settings."""

    model_config = _FROZEN

    webhook: WebhookUrl | None = Field(
        default=None, description="Generic JSON POST target for every notification."
    )


class PolicyFile(BaseModel):
    """One policy file (YAML or TOML). A directory of files is merged in file-name order."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, title="aomd policy file", use_attribute_docstrings=False
    )

    description: str | None = Field(default=None, description="Free text for people.")
    rules: tuple[RuleSpec, ...] = Field(
        default=(), description="Execution rules, tried in order; the first match wins."
    )
    calendars: dict[CalendarName, CalendarSpec] = Field(
        default_factory=dict, description="Named calendars (sets of time windows)."
    )
    triggers: tuple[TriggerRuleSpec, ...] = Field(
        default=(), description="Cron-trigger rules: enable/disable triggers on a calendar."
    )
    schedules: tuple[ScheduleSpec, ...] = Field(
        default=(),
        description="Scheduled runs: a list, or a mapping of name -> schedule (without name).",
    )
    notify: NotifySpec | None = Field(default=None, description="Global notification settings.")
    overrides: tuple[OverrideSpec, ...] = Field(
        default=(),
        description="Time-boxed exceptions (each with a mandatory 'until') that win over "
        "calendars: the GitOps form of 'aomd override add'.",
    )

    @field_validator("schedules", mode="before")
    @classmethod
    def _schedules_mapping(cls, value: Any) -> Any:
        if isinstance(value, dict):
            out = []
            for name, body in value.items():
                if isinstance(body, dict):
                    if "name" in body and body["name"] != name:
                        raise ValueError(
                            f"schedule {name!r} has name {body['name']!r}; expected the same "
                            "name as its key (or no 'name')"
                        )
                    body = {"name": name, **body}
                out.append(body)
            return out
        return value
