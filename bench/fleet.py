"""Benchmark: one aomd process watching 20,000 workflows across 10 accounts (issue 14).

Run: .venv/bin/python bench/fleet.py [--accounts 10] [--workflows 2000] [--rps 10]
     [--window 120] [--sweep-timeout 1500]

Two real processes, nothing of aomd in-process:

* one emulator process serving ``--accounts`` emulators (one project each, own port),
  each filled through ``POST /_emulator/populate`` with ``--workflows`` workflows x 5
  executions (``quiet``) and ``--incidents`` incidents spread over the run;
* the daemon (``aomd --config <tmp>/settings.toml run``) with one account per emulator,
  each at ``requests_per_second = --rps`` (the default 10), default watch intervals
  (fast 5 s, slow 60 s, idle 3600 s) and the reaction bench's policy.

The daemon first sweeps every workflow once (paced to what the scan leaves of the
budget: ~10 minutes for 2,000 workflows at 10 requests/s); the bench waits for every
account's ``watch_sweep_done`` and then measures a steady window: daemon CPU (utime +
stime over wall time, 100% = one core), RSS (``VmRSS`` samples, and ``VmHWM`` over the
whole run), API calls per minute per account from each emulator's ledger, and the
reaction time of the incidents (emulated time of the applied operation minus the
instant the node stopped; the emulators run at speed 1).

Goals (issue 14): RSS <= 300 MB, steady CPU < 25% of one core, calls/min per account
within the budget (600 at 10 requests/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _emulator  # bench/_emulator.py: stopping the processes
import reaction as rb  # bench/reaction.py: admin calls, /proc readers, the policy

ROOT = Path(__file__).resolve().parent.parent
AK, SK = "AKBENCHFLEET00000001", "SKbench/fleet+secret==never-printed"


def project_id(i: int) -> str:
    return f"{i:04d}".ljust(32, "f")


async def serve(n: int, seed: int) -> None:
    """The emulator process: ``n`` emulators on ephemeral ports; prints their URLs."""
    from daemon.emulator import Emulator

    urls = []
    for i in range(n):
        emu = Emulator(
            project_id=project_id(i), access_key=AK, secret_key=SK, speed=1, seed=seed + i
        )
        urls.append(await emu.start(host="127.0.0.1", port=0))
    print(json.dumps(urls), flush=True)
    await asyncio.Event().wait()


def write_config(tmp: Path, urls: list[str], rps: float) -> Path:
    (tmp / "policies").mkdir()
    (tmp / "policies" / "bench.yaml").write_text(rb.POLICY)
    (tmp / "ak").write_text(AK)
    (tmp / "sk").write_text(SK)
    accounts = "".join(
        f"""
[[accounts]]
name = "acc{i}"
project_id = "{project_id(i)}"
endpoints = {{aom = "{url}", dataarts = "{url}"}}
ak_file = "{tmp / "ak"}"
sk_file = "{tmp / "sk"}"
requests_per_second = {rps}
"""
        for i, url in enumerate(urls)
    )
    cfg = tmp / "settings.toml"
    cfg.write_text(
        f"""
state_dir = "{tmp / "state"}"
policies_dir = "{tmp / "policies"}"
{accounts}
[log]
format = "json"
level = "info"

[http]
port = 0

[safety]
max_writes_per_minute = 1000
max_writes_per_minute_per_workflow = 10
"""
    )
    return cfg


def events(log: Path, name: str) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        if f'"{name}"' in line:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if item.get("event") == name:
                out.append(item)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--workflows", type=int, default=2000, help="per account")
    parser.add_argument("--rps", type=float, default=10.0, help="requests_per_second per account")
    parser.add_argument("--incidents", type=int, default=20, help="per account, over the run")
    parser.add_argument("--window", type=float, default=120.0, help="steady window (s)")
    parser.add_argument("--sweep-timeout", type=float, default=1500.0)
    parser.add_argument(
        "--incidents-within", type=float, default=900.0, help="incidents start within (s)"
    )
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.seed))
        return 0

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AOMD_CONFIG", None)
    tmp = Path(tempfile.mkdtemp(prefix="aomd-fleet-"))
    emu = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(args.accounts), "--seed", str(args.seed)],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert emu.stdout is not None
    urls: list[str] = json.loads(emu.stdout.readline())
    daemon: subprocess.Popen[bytes] | None = None
    within = args.incidents_within
    try:
        incidents: list[dict[str, Any]] = []
        for i, url in enumerate(urls):
            pop = rb.admin(
                url,
                "POST",
                "populate",
                {
                    "workflows": args.workflows,
                    "executions_per_workflow": 5,
                    "seed": args.seed + i,
                    "incidents": args.incidents,
                    "within": within,
                    "quiet": True,
                    "fail_times": 1,
                },
            )
            incidents += [{**inc, "account": i} for inc in pop["incidents"]]
        total = args.accounts * args.workflows
        print(f"{args.accounts} emulators, {total} workflows x 5 executions, "
              f"{len(incidents)} incidents within {within:.0f} s", flush=True)  # fmt: skip
        cfg = write_config(tmp, urls, args.rps)
        log_path = tmp / "daemon.log"
        with log_path.open("wb") as log_file:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "daemon.cli", "--config", str(cfg), "run"],
                stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )  # fmt: skip
        t_start = time.monotonic()
        rb.wait_log_event(log_path, "daemon_ready", daemon, 120.0)
        cpu_ready, _, _ = rb.proc_stat(daemon.pid)
        t_ready = time.monotonic()
        print(f"daemon pid {daemon.pid} ready in {t_ready - t_start:.1f} s", flush=True)
        while True:
            done = events(log_path, "watch_sweep_done")
            elapsed = time.monotonic() - t_ready
            print(f"  sweep: {len(done)}/{args.accounts} accounts done, {elapsed:.0f} s",
                  end="\r", flush=True)  # fmt: skip
            if len(done) >= args.accounts or elapsed > args.sweep_timeout:
                break
            if daemon.poll() is not None:
                raise SystemExit(f"daemon exited:\n{log_path.read_text()[-3000:]}")
            time.sleep(5.0)
        sweep_s = time.monotonic() - t_ready
        cpu0, _, _ = rb.proc_stat(daemon.pid)
        sweep_cpu = 100.0 * (cpu0 - cpu_ready) / sweep_s
        t0 = time.monotonic()
        seq0 = [rb.admin(u, "GET", "ledger?since=999999999999")["last_seq"] for u in urls]
        emu_t0 = rb.emulated_now(urls[0])
        rss: list[int] = []
        print()
        while time.monotonic() - t0 < args.window:
            time.sleep(5.0)
            rss.append(rb.proc_stat(daemon.pid)[1])
            print(f"  steady {time.monotonic() - t0:5.0f}/{args.window:.0f} s",
                  end="\r", flush=True)  # fmt: skip
        cpu1, rss_end, hwm = rb.proc_stat(daemon.pid)
        t1 = time.monotonic()
        emu_t1 = rb.emulated_now(urls[0])
        ledgers = [rb.admin(u, "GET", "ledger?since=0", timeout=300)["entries"] for u in urls]
        budget_log = events(log_path, "watch_budget_exceeded")
    finally:
        _emulator.stop(daemon, emu)

    minutes = (emu_t1 - emu_t0) / 60.0
    per_account: list[float] = []
    by_op: Counter[str] = Counter()
    for i, entries in enumerate(ledgers):
        window = [
            e
            for e in entries
            if seq0[i] < e["seq"] and rb.when(e["time"]) <= emu_t1
            and e["method"] not in ("CRON", "START")
        ]  # fmt: skip
        per_account.append(len(window) / minutes)
        by_op.update(rb.operation_of(e["method"], e["path"]) for e in window)
    applied: dict[tuple[str, str], float] = {}
    for entries in ledgers:
        for e in entries:
            ch = e.get("change")
            if e["status"] == 200 and ch and ch.get("kind") == "operation":
                applied.setdefault((ch["execution_id"], ch["node_id"]), rb.when(e["time"]))
    lat_all: list[float] = []
    lat_steady: list[float] = []
    # only incidents that happened 10 s or more before the window ended can be judged
    due = [inc for inc in incidents if rb.when(inc["at"]) <= emu_t1 - 10.0]
    for inc in due:
        at = applied.get((inc["execution_id"], inc["node_id"]))
        if at is not None:
            lat_all.append(at - rb.when(inc["at"]))
            if rb.when(inc["at"]) >= emu_t0:
                lat_steady.append(at - rb.when(inc["at"]))
    wall = t1 - t0
    cpu = 100.0 * (cpu1 - cpu0) / wall
    budget = args.rps * 60
    print(" " * 60, end="\r")
    rows = [
        ("accounts x workflows", f"{args.accounts} x {args.workflows}", ""),
        ("sweep (s), all accounts done", f"{sweep_s:.0f}", ""),
        ("daemon CPU during the sweep (% of one core)", f"{sweep_cpu:.1f}", ""),
        ("daemon CPU, steady (% of one core)", f"{cpu:.1f}", f"< 25  {'OK' if cpu < 25 else 'MISSED'}"),
        ("daemon peak RSS (MB)", f"{hwm / 1024:.1f}", f"<= 300  {'OK' if hwm / 1024 <= 300 else 'MISSED'}"),
        ("daemon RSS steady max / end (MB)", f"{max(rss, default=0) / 1024:.1f} / {rss_end / 1024:.1f}", ""),
        ("API calls/min per account: min / mean / max",
         f"{min(per_account):.0f} / {sum(per_account) / len(per_account):.0f} / {max(per_account):.0f}",
         f"<= {budget:.0f}  {'OK' if max(per_account) <= budget else 'MISSED'}"),
        *((f"  {op} (all accounts)", f"{n / minutes:.1f}", "") for op, n in sorted(by_op.items())),
        ("incidents handled / due (of injected)",
         f"{len(lat_all)} / {len(due)} ({len(incidents)})", ""),
        ("  in the steady window: n, p50 / p99 (s)",
         f"{len(lat_steady)}, {rb.pct(lat_steady, .5):.2f} / {rb.pct(lat_steady, .99):.2f}", ""),
        ("watch_budget_exceeded log lines", f"{len(budget_log)}", ""),
        ("steady window (s)", f"{wall:.0f}", ""),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"\naomd fleet bench, {args.rps:g} req/s per account")
    for name, value, goal in rows:
        print(f"  {name:<{width}}  {value:>18}  {goal}")
    print(json.dumps({
        "accounts": args.accounts, "workflows_per_account": args.workflows, "rps": args.rps,
        "sweep_s": round(sweep_s, 1), "sweep_cpu_pct": round(sweep_cpu, 2),
        "cpu_pct": round(cpu, 2), "peak_rss_mb": round(hwm / 1024, 1),
        "calls_per_min_per_account": [round(x, 1) for x in per_account],
        "incidents": len(incidents), "due": len(due), "handled": len(lat_all),
        "steady_p99_s": round(rb.pct(lat_steady, .99), 3), "window_s": round(wall, 1),
    }, separators=(",", ":")))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
