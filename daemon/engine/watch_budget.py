"""The watcher's call budget: how often it may scan and poll so it fits the rate limit.

Why a plan and not only the token bucket: a bucket that is asked for more than it holds
queues every caller behind the backlog, so the one poll that would see a stop waits behind
hundreds of idle ones and the latency grows without bound. Planning the periods from the
budget instead keeps the request rate at or under it by construction: when the fleet needs
more calls than the budget allows, every period is stretched by the same factor, so
latency grows in proportion to the shortfall (smoothly) and is reported, never queued.

The watcher spends calls on four kinds of work (per second at the nominal periods):

* the change scan: ListWorkflow ``pages`` every ``scan`` seconds (the fast interval);
* hot workflows (an execution known to be active): one poll every ``fast`` seconds;
* unsure idle workflows (their listing lacks the newest execution id or a finished
  status, so only a poll can see a stop): one poll every ``slow`` seconds;
* vouched idle workflows (the listing says the newest execution is the one last polled
  and it has finished; nothing known active): one safety poll every ``idle`` seconds;
* the start-up sweep (every workflow polled once, for runs that stopped before aomd
  started): up to ``SWEEP_SHARE`` of the budget while it lasts, so it ends in bounded
  time without starving the scan (2,000 workflows at 10 requests/s: ~15 minutes).

Pure: numbers in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BUDGET_SHARE = 0.8
"""The share of ``requests_per_second`` the watcher plans for; the rest is left for
writes, trigger and schedule reads, read retries and the humans sharing the quota."""


SWEEP_SHARE = 0.25
"""The share of the planned budget the start-up sweep may take while it lasts."""


@dataclass(frozen=True, slots=True)
class Demand:
    """What one account's watcher must look at, counted after each listing."""

    pages: int
    """ListWorkflow pages of one scan."""
    hot: int
    unsure: int
    vouched: int
    sweep: int = 0
    """Workflows not polled yet since they were discovered."""


@dataclass(frozen=True, slots=True)
class Plan:
    """Effective periods (seconds) and the rates behind them (calls per second)."""

    stretch: float
    """1.0 when the fleet fits the budget; > 1 is the factor every period was stretched by."""
    scan: float
    fast: float
    slow: float
    idle: float
    demand: float
    """Calls/s the fleet needs at the nominal periods."""
    budget: float
    """Calls/s planned for (``requests_per_second`` x share); ``inf`` without a limit."""
    spare: float
    """Calls/s left after the scan and the hot polls: the pace of the idle lane
    (a start-up sweep, slow and safety polls), so it never crowds out the reaction."""

    @property
    def fits(self) -> bool:
        return self.stretch <= 1.0

    def needed_requests_per_second(self, share: float = BUDGET_SHARE) -> float:
        """The ``requests_per_second`` at which this fleet would fit (rounded up)."""
        return float(math.ceil(self.demand / share))


def plan(
    demand: Demand,
    *,
    scan: float,
    fast: float,
    slow: float,
    idle: float,
    requests_per_second: float | None,
    share: float = BUDGET_SHARE,
) -> Plan:
    """Periods that keep the watcher's calls within ``requests_per_second x share``.

    ``idle`` 0 or less: vouched workflows are never polled. ``requests_per_second`` None:
    no budget, nominal periods, unlimited spare.
    """
    idle_rate = demand.vouched / idle if idle > 0 else 0.0
    reaction = demand.pages / scan + demand.hot / fast
    need = reaction + demand.unsure / slow + idle_rate
    if requests_per_second is None:
        return Plan(1.0, scan, fast, slow, idle, need, math.inf, math.inf)
    budget = requests_per_second * share
    need += min(SWEEP_SHARE * budget, demand.sweep / fast)
    stretch = max(1.0, need / budget)
    spare = max(budget - reaction / stretch, budget * 0.05)
    return Plan(
        stretch=stretch,
        scan=scan * stretch,
        fast=fast * stretch,
        slow=slow * stretch,
        idle=idle * stretch,
        demand=need,
        budget=budget,
        spare=spare,
    )
