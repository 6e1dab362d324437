"""``Rule``: the frozen, pydantic-free form of a ``RuleSpec`` that ``decide`` works on.

Converting once at load time keeps the pure core free of pydantic and
pre-compiles what would otherwise be recompiled on every poll (the output regex, RE2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from daemon.kernel.actions import ActionKind, FallbackKind
from daemon.kernel.model import Workflow
from daemon.kernel.workflow_match import workflow_matches
from daemon.policy.file_spec import RuleSpec, parse_clock_time
from daemon.policy.output_regex import OutputRegex, compile_output_regex

__all__ = ["Backoff", "Rule"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    initial: timedelta = timedelta(seconds=30)
    factor: float = 2.0
    max: timedelta = timedelta(minutes=10)
    jitter: float = 0.0
    counting: str | None = None
    """Calendar whose active time the wait counts; None: wall-clock time."""

    def wait(self, attempts_made: int, u: float) -> timedelta:
        """Wait after ``attempts_made`` (>= 1) attempts; ``u`` in [0, 1) scales the jitter."""
        if attempts_made < 1:
            return timedelta(0)
        seconds = self.initial.total_seconds() * self.factor ** (attempts_made - 1)
        base = min(seconds, self.max.total_seconds())
        return timedelta(seconds=base * (1.0 + self.jitter * u))


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One execution rule; see ``RuleSpec`` for what every field means."""

    name: str
    action: ActionKind
    workflow_ids: tuple[str, ...] = ()
    workflow_name: str | None = None
    workflow_tags: tuple[tuple[str, str], ...] = ()
    node_id: str | None = None
    node_name: str | None = None
    node_category: str | None = None
    accounts: tuple[str, ...] = ()
    """Accounts the rule applies to; empty: every account."""
    status: tuple[str, ...] = ("failed", "paused")
    output_regex: OutputRegex | None = field(default=None, compare=False)
    output_pattern: str | None = None
    min_age: timedelta | None = None
    max_age: timedelta | None = None
    not_finished_by: tuple[int, int, str] | None = None
    """(hour, minute, zone) of ``match.not_finished_by``."""
    max_attempts: int = 3
    backoff: Backoff = Backoff()
    delay: timedelta = timedelta(0)
    delay_counting: str | None = None
    """Calendar whose active time ``delay`` counts; None: wall-clock time."""
    deadline: timedelta | None = None
    deadline_counting: str | None = None
    """Calendar whose active time ``deadline`` counts; None: wall-clock time."""
    fallback: FallbackKind = "leave"
    dry_run: bool = False
    notify: bool | None = None
    """None: notify on give-up/terminate/notify only; True: every action; False: never."""
    webhook: str | None = None
    """Rule-specific webhook (``notify: <url>``); None = the global one."""
    gate_inside: str | None = None
    gate_outside: str | None = None
    source: str = ""
    """``file:line`` the rule came from, for messages."""

    @property
    def gate(self) -> str | None:
        return self.gate_inside if self.gate_inside is not None else self.gate_outside

    def matches_workflow(self, workflow_id: str, workflow: Workflow | None) -> bool:
        """Do the rule's workflow criteria match? (Node, status and output are ``decide``'s.)"""
        return workflow_matches(
            workflow_id,
            workflow,
            ids=self.workflow_ids,
            names=() if self.workflow_name is None else (self.workflow_name,),
            tags=self.workflow_tags,
        )

    @classmethod
    def from_spec(cls, spec: RuleSpec, *, source: str = "") -> Rule:
        m = spec.match
        notify: bool | None
        webhook: str | None = None
        if isinstance(spec.notify, str):
            notify, webhook = True, spec.notify
        else:
            notify = spec.notify
        return cls(
            name=spec.name,
            action=spec.action,
            workflow_ids=m.workflow.ids,
            workflow_name=m.workflow.name,
            workflow_tags=tuple(sorted(m.workflow.tags.items())),
            node_id=m.node.id,
            node_name=m.node.name,
            node_category=m.node.category,
            accounts=spec.accounts,
            status=tuple(m.status),
            output_regex=compile_output_regex(m.output_regex)
            if m.output_regex is not None
            else None,
            output_pattern=m.output_regex,
            min_age=m.min_age,
            max_age=m.max_age,
            not_finished_by=(
                parse_clock_time(m.not_finished_by) if m.not_finished_by is not None else None
            ),
            max_attempts=spec.max_attempts,
            backoff=Backoff(
                initial=spec.backoff.initial,
                factor=spec.backoff.factor,
                max=spec.backoff.max,
                jitter=spec.backoff.jitter,
                counting=spec.backoff.counting,
            ),
            delay=spec.delay,
            delay_counting=spec.delay_counting,
            deadline=spec.deadline,
            deadline_counting=spec.deadline_counting,
            fallback=spec.fallback,
            dry_run=spec.dry_run,
            notify=notify,
            webhook=webhook,
            gate_inside=spec.calendar.inside if spec.calendar else None,
            gate_outside=spec.calendar.outside if spec.calendar else None,
            source=source,
        )
