"""Stops the documented operations cannot act on, on the emulator with the real pass loop:
an execution reported ``fail`` (tried once; AOM.31001418 journaled and never retried), an
approval, an unknown status. Each is logged once and notified once, across restarts."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator
from daemon.engine.notify import Notifier
from daemon.journal import MemoryJournal
from daemon.kernel.model import Status
from tests.support.engine import Rig
from tests.support.policies import write_rules
from tests.support.webhooks import Webhook

RULES = """
rules:
  - name: retry
    match: {workflow: {name: "job-*"}, status: failed}
    action: restart
    max_attempts: 3
    backoff: {initial: 10s, factor: 1, jitter: 0}
"""


async def test_execution_reported_fail_is_tried_once_and_31001418_never_retried(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, webhook: Webhook
) -> None:
    emu.set_failed_execution("fail_final")
    wid = emu.add_workflow(
        name="job-final", nodes=[{"id": "work", "duration": 5, "behaviour": "fail"}]
    )
    eid = emu.start_execution(wid)
    policies = write_rules(tmp_path, RULES)
    notifier = Notifier(webhook.url)
    with capture_logs() as logs:
        await Rig(emu, client, journal, policies, notifier).run(120, step=10)
        # a restarted daemon (new handler, same journal) tells nobody again
        await Rig(emu, client, journal, policies, notifier).run(60, step=10)
    sent = [e for e in emu.ledger if e.method == "POST" and "/operation" in e.path]
    assert [(e.status, e.query["action"], e.change) for e in sent] == [(500, "restart", None)]
    rows = await journal.history()
    assert [(r.kind, r.outcome) for r in rows] == [
        ("restart", "rejected"),
        ("cannot_act", "reported"),
    ]
    assert "never retried" in rows[1].reason
    assert len([e for e in logs if e["event"] == "stop_not_actionable"]) == 1
    assert await notifier.flush() == 1
    [body] = webhook.received
    assert (body["kind"], body["execution_id"], body["node_id"]) == ("cannot_act", eid, "work")
    assert body["execution_status"] == "fail"


async def test_execution_reported_fail_that_accepts_a_restart_recovers(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    emu.set_failed_execution("fail")
    wid = emu.add_workflow(
        name="job-soft", nodes=[{"id": "work", "duration": 5, "behaviour": {"fail_times": 1}}]
    )
    eid = emu.start_execution(wid)
    await Rig(emu, client, journal, write_rules(tmp_path, RULES)).run(60, step=5)
    assert (await client.get_execution(wid, eid)).status is Status.SUCCESS
    assert [(r.kind, r.outcome) for r in await journal.history()] == [("restart", "applied")]


async def test_approvals_and_unknown_statuses_are_reported_once_never_written(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, webhook: Webhook
) -> None:
    wid = emu.add_workflow(
        name="job-gated",
        nodes=[
            {"id": "start", "duration": 5},
            {"id": "sign", "parents": ["start"], "kind": "approval"},
            {"id": "odd", "parents": ["start"], "reports": "suspended"},
            {
                "id": "veto",
                "parents": ["start"],
                "kind": "approval",
                "behaviour": "fail",
                "duration": 30,
            },
        ],
    )
    eid = emu.start_execution(wid)
    notifier = Notifier(webhook.url)
    with capture_logs() as logs:
        await Rig(emu, client, journal, write_rules(tmp_path, RULES), notifier).run(120, step=10)
    assert emu.changes() == []
    assert (await client.get_execution(wid, eid)).status is Status.APPROVAL_FAILED
    reported = sorted(r.key.split("/", 2)[2] for r in await journal.history())
    # the veto node is news twice: waiting for its approval, then rejected
    assert reported == [
        "odd/suspended",
        "sign/waitApproval",
        "veto/approvalFailed",
        "veto/waitApproval",
    ]
    said = sorted(e["node_id"] for e in logs if e["event"] == "stop_not_actionable")
    assert said == ["odd", "sign", "veto", "veto"]
    assert await notifier.flush() == 4
    reasons = [(b["node_id"], b["reason"]) for b in webhook.received]
    assert "given in the console" in dict(reasons)["sign"]
    assert "'suspended'" in dict(reasons)["odd"]
    assert "approval was rejected" in reasons[-1][1]
