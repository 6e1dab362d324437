"""Notifier over real HTTP to a receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio

from daemon.engine.notify import Notifier
from tests.support.webhooks import Webhook


async def _deliver(notifier: Notifier, hook: Webhook) -> None:
    """Run the real drain loop until the receiver got one and the queue is settled."""
    task = asyncio.create_task(notifier.run())
    try:
        await hook.delivered.wait()
        while notifier.sent == 0:  # the reply is still on its way back
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_retries_on_500_then_delivers(webhook: Webhook) -> None:
    webhook.statuses = [500, 503]
    notifier = Notifier(webhook.url, attempts=4)
    notifier.notify("terminated", {"workflow_id": "wf", "execution_id": "ex"})
    await _deliver(notifier, webhook)
    assert webhook.hits == 3
    assert webhook.received == [
        {
            "source": "aomd",
            "kind": "terminated",
            "workflow_id": "wf",
            "execution_id": "ex",
            "schema_version": 1,
        }
    ]
    assert (notifier.sent, notifier.dropped) == (1, 0)


async def test_client_error_is_not_retried_and_next_one_still_goes(webhook: Webhook) -> None:
    webhook.statuses = [400]
    notifier = Notifier(webhook.url, attempts=4)
    notifier.notify("gave_up", {"n": 1})
    notifier.notify("gave_up", {"n": 2})
    await _deliver(notifier, webhook)
    assert webhook.hits == 2
    assert [b["n"] for b in webhook.received] == [2]
    assert (notifier.sent, notifier.dropped) == (1, 1)


async def test_per_rule_url_wins_and_no_url_means_silence(webhook: Webhook) -> None:
    quiet = Notifier(None)
    quiet.notify("gave_up", {"n": 1})
    assert quiet._queue.empty()
    notifier = Notifier("http://127.0.0.1:9/unused")
    notifier.notify("gave_up", {"n": 1}, webhook.url)
    await _deliver(notifier, webhook)
    assert webhook.received[0]["n"] == 1


def test_full_queue_drops_instead_of_blocking() -> None:
    notifier = Notifier("http://127.0.0.1:9/x", queue_size=2)
    for i in range(5):
        notifier.notify("gave_up", {"n": i})
    assert notifier.dropped == 3


async def test_flush_delivers_the_queue_without_a_drain_task(webhook: Webhook) -> None:
    """``aomd run --once`` has no notifier task: flush sends what the pass queued."""
    notifier = Notifier(webhook.url)
    notifier.notify("unhandled_pause", {"kind": "spoofed", "source": "x", "n": 1})
    notifier.notify("terminated", {"n": 2})
    assert await notifier.flush() == 2
    assert await notifier.flush() == 0
    assert [(b["source"], b["kind"], b["n"]) for b in webhook.received] == [
        ("aomd", "unhandled_pause", 1),
        ("aomd", "terminated", 2),
    ]
