"""Decision events: every one carries the same stable keys, built here once.

Why one builder: an operator's query (``workflow_id=... outcome=...``) must find every
decision, and a key left out by hand in one of a dozen call sites silently hides that
decision from it. The executor's write events bind the same keys from the intent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def log_decision(
    emit: Callable[..., Any],
    event: str,
    *,
    workflow_id: str,
    rule: str | None,
    action: str,
    reason: str,
    outcome: str,
    dry_run: bool,
    execution_id: str | None = None,
    node_id: str | None = None,
    attempt: int | None = 1,
    request_id: str | None = None,
    **extra: Any,
) -> None:
    """``emit``: a bound logger method (``log.warning``), so the event keeps its logger
    name and level."""
    emit(
        event,
        workflow_id=workflow_id,
        execution_id=execution_id,
        node_id=node_id,
        rule=rule,
        action=action,
        attempt=attempt,
        reason=reason,
        outcome=outcome,
        request_id=request_id,
        dry_run=dry_run,
        **extra,
    )
