"""Soak: does aomd run for months? Slopes of memory, fds, CPU, journal and log (issue 17).

Run: .venv/bin/python bench/soak.py [--hours H] [--speed S] [--keep]

``--hours`` is emulated hours; the run takes ``H * 3600 / S`` real seconds. Two real
processes, as an operator's staging run would be:

* the emulator (``aomd emulator --speed S``, token auth) filled with 2,000 workflows x 5
  executions (``populate``, quiet: the past is settled), plus 40 incident workflows; an
  incident every 2 real seconds (a new execution whose ``work`` node fails once, or whose
  ``approve`` node pauses, half each); 2 % of all calls answered 5xx and 1 % applied and
  then the reply lost (``applied_then_lost``);
* the daemon (``aomd run``) with ``emulator.follow`` (test-only: it runs on the
  emulator's accelerated clock, so calendars, journal upkeep and timestamps move ``S``
  times faster while polling, incidents and toggles keep the real-time load of the issue);
  one trigger rule over ~400 bulk cron workflows under a calendar that toggles every 4 real
  minutes; restart a failed ``work``, continue a paused ``approve``; JSON logs to a file;
  ``AOMD_TRACEMALLOC_DIR`` set (``daemon.ops.memtrace``), so SIGUSR2 dumps a snapshot.

Every 30 real seconds: RSS, open fds, threads, CPU share, journal (file + WAL) and log
size, and the daemon's gauges from ``/metrics``. At the end: least-squares slopes per real
hour (whole run after warm-up, first and second half), reaction p50/p99 (incident ->
applied operation in the ledger, real seconds), how soon failed writes were sent again
(from the log), a verdict, and the tracemalloc top-10 of growth between the snapshot after
warm-up and the one at the end.

Latest run (``--hours 48 --speed 96``: 2.00 emulated days in 30.0 real min; 2 cores shared
with other jobs; 2026-12-01): RSS 86.0 MB at start, 103.0 after warm-up, 108.4 from minute
16 to the end (second-half slope +0.00 MB/h; +13.5 MB/h over the whole run after warm-up,
so the verdict printed GROWS: a step to a plateau); fds 19 -> 28; CPU 22.8 %; 888 of 900
incidents handled, reaction p50 4.01 s, p99 9.30 s; 64 failed writes sent again, p99
0.59 s later; SIGTERM -> exit 0 in 0.45 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import _emulator  # bench/_emulator.py (bench/ is sys.path[0] for a script)

ROOT = Path(__file__).resolve().parent.parent
PID = "50a650a650a650a650a650a650a650a6"
TOKEN = "soak-token-never-printed"
WORKFLOWS, EXECUTIONS = 2000, 5
INCIDENT_POOL = 40
INCIDENT_EVERY = 2.0
"""Real seconds between incidents."""
TOGGLE_EVERY = 240.0
"""Real seconds between calendar transitions (freeze on, off, on...)."""
SAMPLE_EVERY = 30.0
WARMUP_SHARE = 0.2
"""Share of the run before slopes are taken (start-up sweep, caches, first compaction)."""

POLICY = """
calendars:
  soak-freeze:
    ranges:
{ranges}
rules:
  - name: retry-work
    match: {{workflow: {{name: "soak-fail-*"}}, node: {{name: work}}, status: failed}}
    action: restart
  - name: continue-approve
    match: {{workflow: {{name: "soak-pause-*"}}, node: {{name: approve}}, status: paused}}
    action: continue
triggers:
  - name: freeze-bulk
    select: {{names: ["bulk-*"], tags: {{team: "[dow]*"}}}}
    off_during: soak-freeze
"""


def admin(url: str, method: str, path: str, body: Any = None, timeout: float = 300.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{url}/_emulator/{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def proc_sample(pid: int) -> tuple[float, float, int, int]:
    """(cpu seconds, RSS MB, open fds, threads) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return cpu, rss / 1024, len(os.listdir(f"/proc/{pid}/fd")), threads


def metrics(port: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("aomd_") and " " in line:
                name, value = line.rsplit(" ", 1)
                base = name.split("{", 1)[0]
                out[base] = out.get(base, 0.0) + float(value)
    return out


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope (per unit of x)."""
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


@dataclass
class Sample:
    t: float
    """Real seconds since the daemon was ready."""
    cpu: float
    rss: float
    fds: int
    threads: int
    journal: float
    log: float
    gauges: dict[str, float]


def file_mb(*paths: Path) -> float:
    return sum(p.stat().st_size for p in paths if p.exists()) / 1e6


def wait_event(
    log: Path, event: str, proc: subprocess.Popen[bytes], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"daemon exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        for line in log.read_text().splitlines():
            if f'"{event}"' in line:
                item: dict[str, Any] = json.loads(line)
                if item.get("event") == event:
                    return item
        time.sleep(0.2)
    raise SystemExit(f"no {event} within {timeout}s:\n{log.read_text()[-3000:]}")


def freeze_ranges(start: datetime, speed: float, real_seconds: float) -> str:
    """Freeze windows (emulated time) that switch on and off every ``TOGGLE_EVERY`` real s."""
    step = timedelta(seconds=TOGGLE_EVERY * speed)
    lines, t = [], start + step / 2
    while t < start + timedelta(seconds=(real_seconds + 2 * TOGGLE_EVERY) * speed):
        lines.append(f'      - {{start: "{t.isoformat()}", end: "{(t + step).isoformat()}"}}')
        t += 2 * step
    return "\n".join(lines)


def write_config(tmp: Path, url: str, speed: float, start: datetime, real_seconds: float) -> Path:
    (tmp / "policies").mkdir()
    (tmp / "policies" / "soak.yaml").write_text(
        POLICY.format(ranges=freeze_ranges(start, speed, real_seconds))
    )
    cfg = tmp / "settings.toml"
    cfg.write_text(
        f"""
state_dir = "{tmp / "state"}"
policies_dir = "{tmp / "policies"}"

[[accounts]]
name = "soak"
project_id = "{PID}"
endpoints = {{aom = "{url}", dataarts = "{url}"}}
token = "{TOKEN}"
requests_per_second = 100
burst = 200

[log]
format = "json"
level = "info"

[http]
port = 0

[safety]
max_writes_per_minute = 3000
max_writes_per_minute_per_workflow = 10

[emulator]
follow = true
speed = {speed}
"""
    )
    return cfg


def incident_scenario() -> dict[str, Any]:
    workflows = []
    for i in range(INCIDENT_POOL // 2):
        workflows.append(
            {
                "id": f"soak-fail-{i:02d}",
                "name": f"soak-fail-{i:02d}",
                "type": "manual",
                "nodes": [
                    {"id": "prepare", "name": "prepare", "kind": "task", "duration": 2},
                    {
                        "id": "work",
                        "name": "work",
                        "kind": "task",
                        "duration": 10,
                        "behaviour": {"fail_times": 1},
                    },
                    {"id": "finish", "name": "finish", "kind": "task", "duration": 1},
                ],
            }
        )
        workflows.append(
            {
                "id": f"soak-pause-{i:02d}",
                "name": f"soak-pause-{i:02d}",
                "type": "manual",
                "nodes": [
                    {"id": "prepare", "name": "prepare", "kind": "task", "duration": 2},
                    {"id": "approve", "name": "approve", "kind": "pause"},
                    {"id": "finish", "name": "finish", "kind": "task", "duration": 1},
                ],
            }
        )
    return {"workflows": workflows}


def retried(log: Path) -> tuple[list[float], int]:
    """Real seconds from each failed write to the next send of the same write (log
    timestamps), and how many failed writes were never sent again in the log."""
    failed: dict[tuple[Any, ...], datetime] = {}
    delays: list[float] = []
    for line in log.read_text().splitlines():
        if '"action_sent"' not in line:
            continue
        e = json.loads(line)
        ident = (
            e.get("action"),
            e.get("workflow_id"),
            e.get("execution_id"),
            e.get("node_id"),
            e.get("attempt"),
        )
        at = datetime.fromisoformat(e["timestamp"])
        if ident in failed:
            delays.append((at - failed.pop(ident)).total_seconds())
        if e.get("outcome") == "failed":
            failed[ident] = at
    return delays, len(failed)


def main() -> int:  # one linear script: setup, loop, report
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hours", type=float, default=1.0, help="emulated hours (default 1)")
    parser.add_argument("--speed", type=float, default=1.0, help="emulated s per real s")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    real_seconds = args.hours * 3600 / args.speed
    tmp = Path(tempfile.mkdtemp(prefix="aomd-soak-"))
    trace_dir = tmp / "trace"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AOMD_TRACEMALLOC_DIR": str(trace_dir)}
    env.pop("AOMD_CONFIG", None)
    rng = random.Random(args.seed)

    emu, url = _emulator.start(
        "--project-id",
        PID,
        "--token",
        TOKEN,
        "--speed",
        str(args.speed),
        "--seed",
        str(args.seed),
        "--ledger-limit",
        "200000",
    )
    daemon: subprocess.Popen[bytes] | None = None
    try:
        admin(
            url,
            "POST",
            "populate",
            {
                "workflows": WORKFLOWS,
                "executions_per_workflow": EXECUTIONS,
                "seed": args.seed,
                "quiet": True,
            },
        )
        admin(url, "POST", "scenario", incident_scenario())
        admin(
            url,
            "POST",
            "faults",
            [
                {"kind": "server_error", "probability": 0.02},
                {"kind": "applied_then_lost", "probability": 0.01},
            ],
        )
        clock = admin(url, "POST", "speed", {"speed": args.speed})
        emu_anchor, mono_anchor = datetime.fromisoformat(clock["now"]), time.monotonic()

        def emu_now() -> datetime:
            return emu_anchor + timedelta(seconds=(time.monotonic() - mono_anchor) * args.speed)

        cfg = write_config(tmp, url, args.speed, emu_now(), real_seconds)
        log_path = tmp / "daemon.log"
        journal = tmp / "state" / "journal.sqlite3"
        with log_path.open("wb") as log_file:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "daemon.cli", "--config", str(cfg), "run"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        port = int(wait_event(log_path, "ops_server_listening", daemon, 60)["port"])
        wait_event(log_path, "daemon_ready", daemon, 120)
        print(
            f"soak: {args.hours:g} emulated h at speed {args.speed:g} = {real_seconds:.0f} real s;"
            f" daemon pid {daemon.pid}, emulator {url}, dir {tmp}",
            flush=True,
        )
        t_ready = time.monotonic()
        samples: list[Sample] = []
        incidents: dict[str, float] = {}  # execution id -> emulated epoch of the stop
        next_incident = next_sample = t_ready
        warm_dumped = False
        while (now := time.monotonic()) - t_ready < real_seconds:
            if now >= next_incident:
                wid = (
                    f"soak-{rng.choice(['fail', 'pause'])}-{rng.randrange(INCIDENT_POOL // 2):02d}"
                )
                started = emu_now()
                eid = admin(url, "POST", "executions", {"workflow_id": wid})["execution_id"]
                stop = started + timedelta(seconds=2 + (10 if "fail" in wid else 0))
                incidents[eid] = stop.timestamp()
                next_incident += INCIDENT_EVERY
            if now >= next_sample:
                cpu, rss, fds, threads = proc_sample(daemon.pid)
                samples.append(
                    Sample(
                        now - t_ready,
                        cpu,
                        rss,
                        fds,
                        threads,
                        file_mb(journal, journal.with_name(journal.name + "-wal")),
                        file_mb(log_path),
                        metrics(port),
                    )
                )
                s = samples[-1]
                print(
                    f"  {s.t / 60:6.1f} min  emulated {emu_now():%m-%d %H:%M}  RSS {s.rss:6.1f} MB"
                    f"  fds {s.fds:3d}  thr {s.threads:2d}  journal {s.journal:7.2f} MB"
                    f"  log {s.log:7.1f} MB  unreconciled "
                    f"{s.gauges.get('aomd_triggers_unreconciled', 0):.0f}",
                    flush=True,
                )
                next_sample += SAMPLE_EVERY
                if not warm_dumped and now - t_ready >= WARMUP_SHARE * real_seconds:
                    daemon.send_signal(signal.SIGUSR2)
                    warm_dumped = True
            time.sleep(max(0.0, min(next_incident, next_sample) - time.monotonic()))
        daemon.send_signal(signal.SIGUSR2)
        time.sleep(15)  # the last incidents get handled; the snapshot is written
        ledger = admin(url, "GET", "ledger?since=0", timeout=600)["entries"]
        t_stop = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
        stop_seconds = time.monotonic() - t_stop
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
        emu.terminate()
        emu.wait(timeout=30)

    # -- report -----------------------------------------------------------------------------
    handled: dict[str, float] = {}
    calls = Counter()
    for e in ledger:
        path = e["path"]
        calls["5xx" if (e["status"] or 0) >= 500 else "other"] += 1
        if e["status"] == 200 and path.endswith("/operation") and e["change"]:
            eid = path.split("/executions/")[1].split("/")[0]
            if eid in incidents and eid not in handled:
                handled[eid] = datetime.fromisoformat(e["time"]).timestamp()
    oldest = min((datetime.fromisoformat(e["time"]).timestamp() for e in ledger), default=0.0)
    seen = {eid: at for eid, at in incidents.items() if at >= oldest}  # ledger is bounded
    reactions = [(handled[eid] - at) / args.speed for eid, at in seen.items() if eid in handled]
    delays, never = retried(log_path)
    warm = [s for s in samples if s.t >= WARMUP_SHARE * real_seconds]
    half = [s for s in warm if s.t >= (warm[0].t + warm[-1].t) / 2] if warm else []
    first_half = [s for s in warm if s not in half]

    def per_hour(rows: list[Sample], value: str) -> float:
        return slope([r.t / 3600 for r in rows], [float(getattr(r, value)) for r in rows])

    cpu_share = (
        (samples[-1].cpu - warm[0].cpu) / (samples[-1].t - warm[0].t) * 100 if len(warm) > 1 else 0
    )
    emulated_days = real_seconds * args.speed / 86400
    rss_slope = per_hour(warm, "rss")
    j_slope = per_hour(warm, "journal")
    g = samples[-1].gauges
    print()
    print(
        f"ran {real_seconds / 60:.1f} real min = {emulated_days:.2f} emulated days; "
        f"{len(samples)} samples; SIGTERM -> exit {code} in {stop_seconds:.2f} s"
    )
    print(
        f"RSS MB: at start {samples[0].rss:.1f}, after warm-up {warm[0].rss:.1f}, "
        f"at 1 real h {next((s.rss for s in samples if s.t >= 3600), float('nan')):.1f}, "
        f"end {samples[-1].rss:.1f}, max {max(s.rss for s in samples):.1f}"
    )
    print(
        f"slopes per real hour after warm-up: RSS {rss_slope:+.2f} MB (first half "
        f"{per_hour(first_half, 'rss'):+.2f}, second half {per_hour(half, 'rss'):+.2f}); "
        f"fds {per_hour(warm, 'fds'):+.1f}; threads {per_hour(warm, 'threads'):+.1f}; "
        f"journal {j_slope:+.2f} MB; log {per_hour(warm, 'log'):+.1f} MB"
    )
    print(
        f"journal: {samples[-1].journal:.2f} MB at the end ({samples[-1].journal / max(emulated_days, 1e-9):.2f} MB per "
        f"emulated day; {j_slope * 24:.1f} MB per real day at this load, "
        f"{j_slope * 24 / (WORKFLOWS / 1000):.1f} MB per day per 1,000 workflows)"
    )
    print(
        f"CPU {cpu_share:.1f}% of one core after warm-up; fds {samples[-1].fds}, "
        f"threads {samples[-1].threads}"
    )
    print(
        f"incidents: {len(incidents)} started, {len(seen)} in the ledger window, "
        f"{len(reactions)} handled; reaction p50 {pct(reactions, 0.5):.2f} s, "
        f"p99 {pct(reactions, 0.99):.2f} s, max {max(reactions, default=float('nan')):.2f} s "
        "(real seconds)"
    )
    print(
        f"failed writes sent again: {len(delays)}, after p50 {pct(delays, 0.5):.2f} s, "
        f"p99 {pct(delays, 0.99):.2f} s, max {max(delays, default=float('nan')):.2f} s "
        f"(real); not sent again by the end: {never}"
    )
    print(
        "gauges at the end: "
        + ", ".join(
            f"{k.removeprefix('aomd_')}={v:g}"
            for k, v in sorted(g.items())
            if k
            in {
                "aomd_triggers_unreconciled",
                "aomd_triggers_owned",
                "aomd_unhandled_pauses",
                "aomd_write_retries_total",
                "aomd_write_retries_exhausted_total",
                "aomd_executions_seen_total",
                "aomd_journal_size_bytes",
            }
        )
    )
    ok = (
        rss_slope < 1.0
        and per_hour(warm, "fds") < 1
        and code == 0
        and len(reactions) >= 0.95 * len(seen)
    )
    print(
        f"verdict: {'FLAT' if ok else 'GROWS'} (RSS slope {rss_slope:+.2f} MB/h, goal < 1; "
        f"fds flat; exit 0; >= 95 % of incidents handled)"
    )

    snaps = sorted(
        trace_dir.glob("snapshot-*.tracemalloc"), key=lambda p: int(p.stem.split("-")[1])
    )
    if len(snaps) >= 2:
        before = tracemalloc.Snapshot.load(str(snaps[0]))
        after = tracemalloc.Snapshot.load(str(snaps[-1]))
        keep = [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen*"),
        ]
        diff = after.filter_traces(keep).compare_to(before.filter_traces(keep), "lineno")
        print("tracemalloc top-10 growth between the warm-up and the end snapshot:")
        for stat in diff[:10]:
            frame = stat.traceback[0]
            where = frame.filename.replace(str(ROOT) + "/", "")
            print(
                f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {where}:{frame.lineno}"
            )
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
