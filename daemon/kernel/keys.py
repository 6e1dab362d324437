"""Every idempotency key aomd journals, in one place.

A key names one effect in the world, so its format decides what "the same write" means:
two decisions that build the same key are one write, sent at most once. Keys are stored
in the journal for months, so a format never changes silently; each builder here says
what makes its key unique and why.

    exec/<execution>/<node>/<segment>/<attempt>      node operation, terminate, notify
    trigger/<account>/<workflow>/<action>/<second>[/drift]
    schedule/<account>/<schedule>/<fire time ISO>   execute or DataArts task action
    catchup/<account>/<schedule>/<fire time ISO>    catch-up run of a blocked fire time
    overlap/<account>/<schedule>/<fire time ISO>/<execution>   terminate_previous
    override/<id>/<add|end>                          an override granted or ended
    release/<account>/<workflow>/<disabled at ISO>   on_release: run_once
    unhandled/<execution>/<node>                     "no rule matches": told once
    cannot-act/<execution>/<node or ->/<status>      a stop the API cannot act on: told once
"""

from __future__ import annotations

from datetime import datetime


def execution_key(execution_id: str, node_id: str, segment: str, attempt: int) -> str:
    """A write to one stopped node. ``segment`` is the action (``restart``...) or
    ``fallback-<kind>``; ``attempt`` makes a retry a new write, never a resend."""
    return f"exec/{execution_id}/{node_id}/{segment}/{attempt}"


def key_segment(key: str) -> tuple[str, int] | None:
    """``(segment, attempt)`` of an execution key, None if ``key`` is not one."""
    parts = key.rsplit("/", 2)
    if len(parts) == 3 and parts[2].isdigit():
        return parts[1], int(parts[2])
    return None


def trigger_key(account: str, workflow_id: str, action: str, at: datetime, *, drift: bool) -> str:
    """One trigger change per (workflow, direction, pass second). Every pass reads the
    trigger state first and asks for a change only where it differs, so the key need
    only stop a repeat within one pass; a coarser key (the minute, as before) made the
    second of two freezes in one minute a "duplicate" that was never sent (found by the
    crash test's oracle), and a person re-enabling a trigger in the minute aomd disabled
    it stay enabled. A drift correction is marked as such for the journal reader."""
    return f"trigger/{account}/{workflow_id}/{action}/{at:%Y%m%dT%H%M%S}" + (
        "/drift" if drift else ""
    )


SCHEDULE_KEY_PREFIXES = ("schedule/", "catchup/", "overlap/")
"""Keys of writes a schedule makes: with hash-sharded accounts they belong to the
schedule's shard (the account's first bucket), not to the workflow's."""


def schedule_key(account: str, schedule: str, fire_time: datetime) -> str:
    """One fire time of one schedule: runs once however often it is looked at."""
    return f"schedule/{account}/{schedule}/{fire_time.isoformat()}"


def catch_up_key(account: str, schedule: str, blocked_fire: datetime) -> str:
    """The catch-up of one blocked fire time, apart from the fire time's own key (which
    already holds its "skipped" row): it runs once however often a restart looks at it.
    ``catch_up: once`` uses the latest blocked fire time of the stretch."""
    return f"catchup/{account}/{schedule}/{blocked_fire.isoformat()}"


def overlap_key(account: str, schedule: str, fire_time: datetime, execution_id: str) -> str:
    """``overlap: terminate_previous``: the terminate of one running execution before one
    fire time's run; a restart between the terminate and the execute does not repeat it."""
    return f"overlap/{account}/{schedule}/{fire_time.isoformat()}/{execution_id}"


def release_key(account: str, workflow_id: str, disabled_at: datetime) -> str:
    """``on_release: run_once``: one run per time aomd disabled the trigger (the claim's
    time), sent before the re-enable, so a restart in between finds it journaled."""
    return f"release/{account}/{workflow_id}/{disabled_at.isoformat()}"


def override_key(override_id: str, event: str) -> str:
    """The history row of an override being added or ended (ids are unique per journal)."""
    return f"override/{override_id}/{event}"


def unhandled_key(execution_id: str, node_id: str) -> str:
    """A stop no rule matches is logged and notified once, across restarts too."""
    return f"unhandled/{execution_id}/{node_id}"


def cannot_act_key(execution_id: str, node_id: str, status: str) -> str:
    """A stop the documented operations cannot act on (an execution ended ``fail``, an
    approval, an unknown status) is logged and notified once per status, across restarts
    too (an approval waited for, then rejected, is news twice); ``-`` stands for the
    execution itself."""
    return f"cannot-act/{execution_id}/{node_id or '-'}/{status}"


STREAK_HOLDS = "streak-holds"
"""Journal sightings under ``streak-holds/<account>`` (node = workflow): triggers held after
a failure streak. Never pruned by retention: a hold lasts until a person acts."""
STREAK_RESETS = "streak-resets"
"""Sightings under ``streak-resets/<account>``: when a person last released a hold."""
