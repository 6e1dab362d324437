"""``python -m daemon.emulator`` as a real subprocess: the listening line, then SIGTERM -> 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp

import daemon.emulator

PID = "0123456789abcdef0123456789abcdef"
DEMO = Path(daemon.emulator.__file__).parent / "scenarios" / "demo.yaml"


async def _spawn(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "AOMD_EMULATOR_TOKEN": "cli-token"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon.emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--project-id",
        PID,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    return proc, line


async def test_cli_prints_listening_line_serves_and_exits_0_on_sigterm() -> None:
    proc, line = await _spawn("--scenario", str(DEMO), "--speed", "120", "--seed", "4")
    try:
        assert line.startswith("listening on http://127.0.0.1:")
        assert line.endswith("\n")
        url = line.split()[2]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.post(
                f"{url}/v1/{PID}/cms/workflow-list",
                headers={"X-Auth-Token": "cli-token"},
                json={"size": 100},
            ) as resp:
                body = await resp.json()
                assert resp.status == 200
                assert "wf-patch-linux" in {w["id"] for w in body["elements"]}
            async with http.get(f"{url}/_emulator/state") as resp:
                state = json.loads(await resp.text())
                assert state["speed"] == 120  # the command line wins over the scenario
                assert state["seed"] == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 10)
    assert rc == 0
    assert proc.stdout is not None
    assert await proc.stdout.read() == b""  # exactly one line on stdout
    assert proc.stderr is not None
    assert b"cli-token" not in await proc.stderr.read()


async def test_cli_sigint_and_bad_scenario() -> None:
    proc, line = await _spawn()
    assert line.startswith("listening on ")
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon.emulator",
        "--project-id",
        PID,
        "--token",
        "t",
        "--scenario",
        "/nonexistent.yaml",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert out == b""
    assert b"nonexistent.yaml" in err


async def test_aomd_emulator_subcommand_with_every_flag() -> None:
    """``aomd emulator`` (daemon/cli/cmd_emulator.py) forwards to the same entry point, flags included."""
    aomd = Path(sys.executable).parent / "aomd"
    cmd = (
        [str(aomd)]
        if aomd.exists()
        else [sys.executable, "-c", "from daemon.cli import main; raise SystemExit(main())"]
    )
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        "emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--project-id",
        PID,
        "--access-key",
        "AKCLI",
        "--secret-key",
        "SKCLI",
        "--token",
        "tok-cli",
        "--scenario",
        str(DEMO),
        "--speed",
        "30",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.split()[2]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            path = f"{url}/v1/{PID}/cms/workflow-list"
            async with http.post(path, headers={"X-Auth-Token": "tok-cli"}, json={}) as resp:
                assert resp.status == 200
            async with http.post(path, headers={"X-Auth-Token": "nope"}, json={}) as resp:
                assert resp.status == 401
                assert (await resp.json())["error_code"] == "AOM.31009003"
                assert resp.headers["X-Request-Id"]
            async with http.get(f"{url}/_emulator/state") as resp:
                assert (await resp.json())["speed"] == 30
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
