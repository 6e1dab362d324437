"""Benchmark: how fast aomd reacts to a stopped execution, and what it costs (issue 4).

Run: .venv/bin/python bench/reaction.py [--quick] [--keep]

Two real processes, nothing in-process:

* the emulator (``aomd emulator --speed 1``), filled through ``POST /_emulator/populate``
  with 2,000 workflows x 5 executions (``quiet``: the past is settled) and 225 incidents
  (~200 in the steady window, the rest during the start-up sweep, reported apart):
  one new execution per incident workflow, starting at a random time, whose node ``work``
  fails once or whose node ``approve`` pauses. The emulator runs in its own process so its
  CPU is not counted as the daemon's.
* the daemon (``aomd --config <tmp>/settings.toml run``) with JSON logs to a file and one
  policy: restart a failed ``work`` node, continue a paused ``approve`` node, both at once.
  Watch intervals are the defaults (fast 5 s, slow 60 s, discovery 300 s).

Reaction latency of an incident = emulated time of the ledger entry of the operation that
was applied to it (``restart`` / ``continue``, HTTP 200) minus the incident's ``at`` (the
emulated instant the node failed or started pausing, i.e. when the stop became observable
through the API). With the emulator at speed 1 both clocks follow the wall clock.

API calls per minute come from the emulator ledger (every request it received), split by
operation, over the steady window (after the daemon's start-up sweep over all workflows).
Daemon peak RSS is ``VmHWM`` from ``/proc/PID/status``; CPU share is the utime + stime delta
from ``/proc/PID/stat`` over the steady window divided by its wall time (100% = one core).

Goals (issue 4): p99 <= fast interval + 1 s, RSS <= 150 MB, CPU < 10% of one core.
Issue 14: the same within 600 calls a minute, i.e. at ``--rps 10`` (the default
``requests_per_second``). The daemon sweeps every workflow once at start-up with the calls
its scan leaves (``watch_sweep_done``); the steady window waits for that up to
``--max-warmup`` seconds (~10 minutes at 10 requests/s).

``AOMD_BENCH_PROFILE=1`` runs the daemon under cProfile and prints its top functions.

Latest full run (2 cores, seed 4, requests_per_second 100; 2026-11-26):
225/225 incidents handled (206 in the steady window); steady reaction p50 2.75 s, p99
5.02 s, max 5.16 s (fail->restart p99 5.08, pause->continue p99 4.98); warm-up incidents
max 4.13 s; 2,464 API calls/min (list_executions 2,179, list_workflows 235, operate 50);
peak RSS 119.6 MB; CPU 6.4% of one core.

Issue 14, quick runs on 2026-12-01 (before -> after the change scan and the budget):
100 req/s: p99 4.63 -> 4.94 s, 2,289 -> 360 calls/min, CPU 6.6 -> 1.2%;
10 req/s (window inside the start-up sweep): p99 10.93 -> 5.86 s, 600 (throttled) ->
547 calls/min. After the sweep (--max-warmup 700): 362 calls/min. README.md has the
table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import _emulator  # bench/_emulator.py (bench/ is sys.path[0] for a script)

ROOT = Path(__file__).resolve().parent.parent
PID = "0123456789abcdef0123456789abcdef"
AK, SK = "AKBENCHREACTION00001", "SKbench/reaction+secret==never-printed"

FAST, SLOW, DISCOVERY = 5.0, 60.0, 300.0
WORKFLOWS, EXECUTIONS = 2000, 5
#: Steady polling need: WORKFLOWS / SLOW (idle) + active / FAST + discovery pages
#: = 33.3 + ~20 / 5 + 20 / 300 ~= 38 requests/s; the bucket leaves room for the start-up
#: sweep (2,000 polls at once) and for bursts of incidents.
REQUESTS_PER_SECOND, BURST = 100.0, 100
#: A quarter of the incident workflows are parallel (issue 13): two branches stop at the
#: same instant, both must be handled, each counted as an incident.
PARALLEL_SHARE = 0.25

POLICY = """\
rules:
  - name: bench-restart-work
    match: {node: {name: work}, status: failed}
    action: restart
    max_attempts: 3
    backoff: {initial: 1s, factor: 1, max: 1s}
    fallback: skip
  - name: bench-continue-approve
    match: {node: {name: approve}, status: paused}
    action: continue
"""


@dataclass(frozen=True)
class Mode:
    incidents: int
    warmup: float
    """Seconds after daemon_ready before the steady window starts (start-up sweep)."""
    window: float
    """Seconds of the steady window; incidents happen within warmup + window."""
    drain: float
    """Extra seconds after the window for the last incidents to be handled."""
    max_warmup: float
    """Longest wait for the daemon's start-up sweep before the steady window."""


#: incidents are spread over warmup + window: 225 puts ~200 in the steady window.
FULL = Mode(incidents=225, warmup=30.0, window=240.0, drain=20.0, max_warmup=60.0)
QUICK = Mode(incidents=40, warmup=20.0, window=60.0, drain=15.0, max_warmup=40.0)


def aomd(*args: str) -> list[str]:
    if os.environ.get("AOMD_BENCH_PROFILE") and args and args[-1] == "run":
        return [sys.executable, "-m", "cProfile", "-o", PROFILE_OUT, "-m", "daemon.cli", *args]
    return [sys.executable, "-m", "daemon.cli", *args]


PROFILE_OUT = ""


def admin(url: str, method: str, path: str, body: Any = None, timeout: float = 120.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{url}/_emulator/{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def proc_stat(pid: int) -> tuple[float, int, int]:
    """(cpu seconds utime+stime, VmRSS kB, VmHWM kB) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return cpu, rss, hwm


def operation_of(method: str, path: str) -> str:
    if path.endswith("/workflow-list"):
        return "list_workflows"
    if "/cms/workflow/" not in path:
        return f"{method} other"
    tail = path.split("/cms/workflow/", 1)[1].split("/")
    if len(tail) == 2 and tail[1] == "executions":
        return "list_executions" if method == "GET" else "execute_workflow"
    if len(tail) == 4:
        return {"status": "get_execution", "operation": "operate", "terminate": "terminate"}.get(
            tail[3], f"{method} other"
        )
    if len(tail) >= 2 and tail[1] == "trigger":
        return "set_trigger"
    return f"{method} other"


def emulated_now(url: str) -> float:
    """The emulator's clock (POST speed returns it; at speed 1 setting 1 changes nothing)."""
    return when(admin(url, "POST", "speed", {"speed": 1})["now"])


def when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def wait_log_event(
    log: Path, event: str, proc: subprocess.Popen[bytes], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"daemon exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        for line in log.read_text().splitlines():
            if f'"{event}"' in line:
                try:
                    item: dict[str, Any] = json.loads(line)
                except ValueError:
                    continue
                if item.get("event") == event:
                    return item
        time.sleep(0.2)
    raise SystemExit(f"no {event} within {timeout}s:\n{log.read_text()[-3000:]}")


def write_config(tmp: Path, url: str) -> Path:
    (tmp / "policies").mkdir()
    (tmp / "policies" / "bench.yaml").write_text(POLICY)
    (tmp / "ak").write_text(AK)
    (tmp / "sk").write_text(SK)
    cfg = tmp / "settings.toml"
    cfg.write_text(
        f"""
state_dir = "{tmp / "state"}"
policies_dir = "{tmp / "policies"}"

[[accounts]]
name = "bench"
project_id = "{PID}"
endpoints = {{aom = "{url}", dataarts = "{url}"}}
ak_file = "{tmp / "ak"}"
sk_file = "{tmp / "sk"}"
requests_per_second = {REQUESTS_PER_SECOND}
burst = {BURST}

[log]
format = "json"
level = "info"

[http]
port = 0

[watch]
fast_interval = {FAST}
slow_interval = {SLOW}
discovery_interval = {DISCOVERY}

[safety]
max_writes_per_minute = 1000
max_writes_per_minute_per_workflow = 10
"""
    )
    return cfg


def main() -> int:
    global PROFILE_OUT, REQUESTS_PER_SECOND, BURST
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="~2 min sanity run, 40 incidents")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument(
        "--rps",
        type=float,
        default=REQUESTS_PER_SECOND,
        help="the account's requests_per_second (default 100; the product default is 10)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, journal)")
    parser.add_argument(
        "--parallel-share",
        type=float,
        default=PARALLEL_SHARE,
        help="share of incident workflows with two branches stopping at once (default 0.25)",
    )
    parser.add_argument(
        "--max-warmup",
        type=float,
        default=None,
        help="wait up to this long (s) for the start-up sweep before the steady window "
        "(default 40 quick, 60 full); incidents are then spread over it too",
    )
    parser.add_argument("--incidents", type=int, default=None, help="override the mode's")
    args = parser.parse_args()
    REQUESTS_PER_SECOND = args.rps
    BURST = max(20, min(100, round(args.rps)))
    mode = QUICK if args.quick else FULL
    if args.max_warmup is not None:
        mode = replace(mode, max_warmup=args.max_warmup)
    if args.incidents is not None:
        mode = replace(mode, incidents=args.incidents)
    tmp = Path(tempfile.mkdtemp(prefix="aomd-bench-"))
    PROFILE_OUT = str(tmp / "daemon.prof")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AOMD_CONFIG", None)

    emu, url = _emulator.start(
        "--project-id", PID, "--access-key", AK, "--secret-key", SK, "--speed", "1",
        "--seed", str(args.seed),
    )  # fmt: skip
    daemon: subprocess.Popen[bytes] | None = None
    try:
        within = max(mode.warmup, mode.max_warmup if args.max_warmup else 0.0) + mode.window
        t_pop = time.monotonic()
        population = admin(
            url,
            "POST",
            "populate",
            {
                "workflows": WORKFLOWS,
                "executions_per_workflow": EXECUTIONS,
                "seed": args.seed,
                "incidents": mode.incidents,
                "within": within,
                "quiet": True,
                "fail_times": 1,
                "parallel_share": args.parallel_share,
            },
        )
        incidents: list[dict[str, Any]] = population["incidents"]
        print(
            f"emulator {url}: {WORKFLOWS} workflows x {EXECUTIONS} executions, "
            f"{len(incidents)} incidents within {within:.0f} s (populate "
            f"{time.monotonic() - t_pop:.1f} s)",
            flush=True,
        )

        cfg = write_config(tmp, url)
        log_path = tmp / "daemon.log"
        with log_path.open("wb") as log_file:
            daemon = subprocess.Popen(
                aomd("--config", str(cfg), "run"),
                stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )  # fmt: skip
        t_start = time.monotonic()
        wait_log_event(log_path, "daemon_ready", daemon, 60.0)
        t_ready = time.monotonic()
        print(f"daemon pid {daemon.pid} ready in {t_ready - t_start:.1f} s", flush=True)

        # The steady window starts after the warm-up and, when the daemon says so
        # (``watch_sweep_done``, since issue 14), after its start-up sweep, waiting at most
        # ``max_warmup``: at 10 requests/s the sweep of 2,000 workflows takes ~10 minutes
        # and the window then overlaps it (calls/min at the budget, by design).
        time.sleep(mode.warmup)
        while time.monotonic() - t_ready < mode.max_warmup and not any(
            '"watch_sweep_done"' in line for line in log_path.read_text().splitlines()
        ):
            time.sleep(1.0)
        swept = [
            json.loads(line)
            for line in log_path.read_text().splitlines()
            if '"watch_sweep_done"' in line
        ]
        sweep_s = swept[0]["seconds"] if swept else None
        print(
            f"steady window starts {time.monotonic() - t_ready:.0f} s after ready; sweep "
            + (f"done in {sweep_s} s" if sweep_s is not None else "not done (or not logged)"),
            flush=True,
        )
        cpu0, _, _ = proc_stat(daemon.pid)
        t0 = time.monotonic()
        seq0 = admin(url, "GET", "ledger?since=999999999999")["last_seq"]
        emu_t0 = emulated_now(url)
        rss_samples: list[int] = []
        while time.monotonic() - t0 < mode.window:
            time.sleep(5.0)
            rss_samples.append(proc_stat(daemon.pid)[1])
            done = time.monotonic() - t0
            print(f"  steady {done:5.0f}/{mode.window:.0f} s", end="\r", flush=True)
        cpu1, _, _ = proc_stat(daemon.pid)
        t1 = time.monotonic()
        emu_t1 = emulated_now(url)
        seq1 = admin(url, "GET", "ledger?since=999999999999")["last_seq"]
        time.sleep(mode.drain)
        _, rss_end, hwm = proc_stat(daemon.pid)
        print(" " * 40, end="\r")

        ledger = admin(url, "GET", "ledger?since=0", timeout=300)["entries"]
    finally:
        _emulator.stop(daemon, emu)

    # -- reaction latency ------------------------------------------------------------------
    expected = {"fail": "restart", "pause": "continue"}
    applied: dict[tuple[str, str, str], float] = {}
    for e in ledger:
        ch = e.get("change")
        if e["status"] == 200 and ch and ch.get("kind") == "operation":
            key = (ch["execution_id"], ch["node_id"], ch["action"])
            applied.setdefault(key, when(e["time"]))
    # Headline figures: incidents that happen in steady state (after the start-up sweep,
    # which polls every workflow once and keeps the poll loop busy for ~20 s); the ones
    # during the warm-up are reported on their own line.
    latencies: dict[str, list[float]] = {"fail": [], "pause": []}
    warm: list[float] = []
    missed: list[dict[str, Any]] = []
    for inc in incidents:
        at = applied.get((inc["execution_id"], inc["node_id"], expected[inc["kind"]]))
        if at is None:
            missed.append(inc)
        elif when(inc["at"]) < emu_t0:
            warm.append(at - when(inc["at"]))
        else:
            latencies[inc["kind"]].append(at - when(inc["at"]))
    every = latencies["fail"] + latencies["pause"]
    steady_injected = sum(1 for inc in incidents if when(inc["at"]) >= emu_t0)

    # -- API calls in the steady window ---------------------------------------------------
    calls = Counter(
        operation_of(e["method"], e["path"])
        for e in ledger
        if seq0 < e["seq"] <= seq1 and e["method"] not in ("CRON", "START")
    )
    minutes = (emu_t1 - emu_t0) / 60.0
    per_min = {op: n / minutes for op, n in sorted(calls.items())}
    total_per_min = sum(per_min.values())
    wall = t1 - t0
    cpu_share = 100.0 * (cpu1 - cpu0) / wall

    goal_p99 = FAST + 1.0
    p50, p99, worst = pct(every, 0.5), pct(every, 0.99), max(every, default=float("nan"))
    rows = [
        ("incidents handled / injected (all)", f"{len(every) + len(warm)} / {len(incidents)}", ""),
        ("steady-state incidents handled / injected", f"{len(every)} / {steady_injected}", ""),
        ("reaction p50 (s)", f"{p50:.2f}", ""),
        ("reaction p99 (s)", f"{p99:.2f}", f"<= {goal_p99:.0f}  {'OK' if p99 <= goal_p99 else 'MISSED'}"),
        ("reaction max (s)", f"{worst:.2f}", ""),
        ("  fail -> restart p50/p99 (s)", f"{pct(latencies['fail'], .5):.2f} / {pct(latencies['fail'], .99):.2f}", ""),
        ("  pause -> continue p50/p99 (s)", f"{pct(latencies['pause'], .5):.2f} / {pct(latencies['pause'], .99):.2f}", ""),
        ("warm-up incidents: n, p50 / max (s)", f"{len(warm)}, {pct(warm, .5):.2f} / {max(warm, default=float('nan')):.2f}", ""),
        ("API calls / min (steady)", f"{total_per_min:.0f}", ""),
        *((f"  {op}", f"{n:.1f}", "") for op, n in per_min.items()),
        ("daemon peak RSS (MB)", f"{hwm / 1024:.1f}", f"<= 150  {'OK' if hwm / 1024 <= 150 else 'MISSED'}"),
        ("daemon RSS steady max / end (MB)", f"{max(rss_samples, default=0) / 1024:.1f} / {rss_end / 1024:.1f}", ""),
        ("daemon CPU, steady (% of one core)", f"{cpu_share:.1f}", f"< 10  {'OK' if cpu_share < 10 else 'MISSED'}"),
        ("steady window (s)", f"{wall:.0f}", ""),
        ("start-up sweep (s)", "not done" if sweep_s is None else f"{sweep_s:.0f}", ""),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"\naomd reaction bench ({'quick' if args.quick else 'full'}), seed {args.seed}, "
          f"fast {FAST:.0f} s / slow {SLOW:.0f} s, {REQUESTS_PER_SECOND:.0f} req/s")  # fmt: skip
    for name, value, goal in rows:
        print(f"  {name:<{width}}  {value:>14}  {goal}")
    if missed:
        print(f"  not handled: {len(missed)}, e.g. {missed[:3]}")
    summary = {
        "mode": "quick" if args.quick else "full",
        "workflows": WORKFLOWS,
        "executions_per_workflow": EXECUTIONS,
        "incidents": len(incidents),
        "handled": len(every) + len(warm),
        "steady_incidents": steady_injected,
        "steady_handled": len(every),
        "warmup_max_s": round(max(warm, default=float("nan")), 3),
        "p50_s": round(p50, 3),
        "p99_s": round(p99, 3),
        "max_s": round(worst, 3),
        "calls_per_min": round(total_per_min, 1),
        "calls_per_min_by_op": {op: round(n, 1) for op, n in per_min.items()},
        "peak_rss_mb": round(hwm / 1024, 1),
        "cpu_pct": round(cpu_share, 2),
        "window_s": round(wall, 1),
        "sweep_s": sweep_s,
        "fast_interval": FAST,
        "slow_interval": SLOW,
        "requests_per_second": REQUESTS_PER_SECOND,
    }
    print(json.dumps(summary, separators=(",", ":")))
    if os.environ.get("AOMD_BENCH_PROFILE") and Path(PROFILE_OUT).exists():
        import pstats

        pstats.Stats(PROFILE_OUT).sort_stats("cumulative").print_stats(40)
    if args.keep or os.environ.get("AOMD_BENCH_PROFILE"):
        (tmp / "ledger.json").write_text(json.dumps(ledger))
        (tmp / "incidents.json").write_text(json.dumps(incidents))
        print(f"kept {tmp} (daemon.log, ledger.json, incidents.json)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
