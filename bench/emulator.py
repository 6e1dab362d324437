"""Benchmark: the emulator is not the bottleneck (issue 3: 2,000 workflows x 5 executions).

Run: .venv/bin/python bench/emulator.py [--requests N] [--concurrency C] [--workflows W]

The emulator runs as its own process (``python -m daemon.emulator --port 0``) and is filled
through the admin API (``POST /_emulator/populate``: W workflows x 5 executions, as a
reaction benchmark would). This process then fires N ListWorkflowExecutions requests
(round-robin over all workflows, C in flight) with bare aiohttp, first with the token, then
signed with AK/SK (the emulator verifies each signature), then N execution-detail calls.

For each it prints requests/s and the CPU milliseconds per request of the emulator process
(from /proc/PID/stat, Linux) next to this client's: when the emulator's CPU per request is
well under a real client's, it cannot be what limits a benchmark of aomd.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _emulator  # bench/_emulator.py (bench/ is sys.path[0] for a script)
import aiohttp
from yarl import URL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.cloud import signer  # noqa: E402  # after sys.path on purpose

PID = "0123456789abcdef0123456789abcdef"
AK, SK, TOKEN = "AKBENCHEMULATOR1", "SKbench/emulator+key==", "tok-bench-emulator"
WARMUP = 200


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    env = {
        "AOMD_EMULATOR_ACCESS_KEY": AK,
        "AOMD_EMULATOR_SECRET_KEY": SK,
        "AOMD_EMULATOR_TOKEN": TOKEN,
    }
    return _emulator.start(
        "--project-id", PID, "--speed", "0", "--ledger-limit", "100000", env=env
    )  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Request = Callable[[aiohttp.ClientSession], Any]


async def run(
    session: aiohttp.ClientSession, make: Callable[[int], Request], n: int, concurrency: int
) -> None:
    counter = itertools.count()

    async def worker() -> None:
        while (i := next(counter)) < n:
            await make(i)(session)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def get(url: str, path: str, headers: dict[str, str]) -> Request:
    async def call(session: aiohttp.ClientSession) -> None:
        async with session.get(URL(url + path, encoded=True), headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise SystemExit(f"GET {path}: HTTP {resp.status}")

    return call


def signed(url: str, path: str) -> dict[str, str]:
    return signer.sign(
        ak=AK,
        sk=SK,
        method="GET",
        host=url.split("//", 1)[1],
        path=path,
        query=(),
        headers={"Content-Type": "application/json"},
        body=b"",
        now=datetime.now(UTC),
    )


async def main_async(args: argparse.Namespace) -> None:
    proc, url = start_emulator()
    try:
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            t0 = time.perf_counter()
            populate = {"workflows": args.workflows, "executions_per_workflow": 5, "seed": 1}
            async with session.post(f"{url}/_emulator/populate", json=populate) as resp:
                body = await resp.json()
                if resp.status != 200:
                    raise SystemExit(f"populate failed: {body}")
            wids: list[str] = body["workflow_ids"]
            print(
                f"populate {len(wids)} workflows x 5 executions via admin API: "
                f"{(time.perf_counter() - t0) * 1000:.0f} ms"
            )
            async with session.get(f"{url}/_emulator/state") as resp:
                state = await resp.json()
            pairs = [
                (w["id"], e["execution_id"]) for w in state["workflows"] for e in w["executions"]
            ]
            token = {"X-Auth-Token": TOKEN}
            base = f"/v1/{PID}/cms/workflow"

            def list_token(i: int) -> Request:
                return get(url, f"{base}/{wids[i % len(wids)]}/executions", token)

            def list_aksk(i: int) -> Request:
                path = f"{base}/{wids[i % len(wids)]}/executions"
                return get(url, path, signed(url, path))

            def detail_token(i: int) -> Request:
                wid, eid = pairs[i % len(pairs)]
                return get(url, f"{base}/{wid}/executions/{eid}/status", token)

            cases = [
                ("list_executions token", list_token),
                ("list_executions AK/SK", list_aksk),
                ("execution detail token", detail_token),
            ]
            rows = []
            for name, make in cases:
                await run(session, make, WARMUP, args.concurrency)
                emu0, cli0, t0 = cpu_seconds(proc.pid), time.process_time(), time.perf_counter()
                await run(session, make, args.requests, args.concurrency)
                wall = time.perf_counter() - t0
                emu_cpu = cpu_seconds(proc.pid) - emu0
                cli_cpu = time.process_time() - cli0
                n = args.requests
                rows.append((name, n / wall, emu_cpu / n * 1000, cli_cpu / n * 1000))
    finally:
        proc.terminate()
        proc.wait(10)

    print(
        f"\n{args.requests} requests per case, concurrency {args.concurrency}, "
        f"{args.workflows} workflows x 5 executions, emulator in its own process\n"
    )
    head = f"{'case':<24} {'req/s':>8} {'emulator CPU ms/req':>20} {'client CPU ms/req':>18}"
    print(f"{head} {'emulator capacity/core':>23}")
    for name, rps, emu_ms, cli_ms in rows:
        capacity = 1000 / emu_ms if emu_ms > 0 else float("inf")
        print(f"{name:<24} {rps:>8.0f} {emu_ms:>20.3f} {cli_ms:>18.3f} {capacity:>17.0f} req/s")
    print(
        "\n(client = bare aiohttp, the cheapest possible client; the client signing AK/SK "
        "is included in its CPU)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workflows", type=int, default=2000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
