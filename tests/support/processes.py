"""Real processes for end-to-end tests: ``aomd emulator`` and ``aomd run`` as subprocesses.

Nothing here imports the daemon's internals: the tests see exactly what an operator sees
(exit codes, JSON log lines, HTTP endpoints, sd_notify datagrams, the emulator's ledger).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROJECT = "e2e00000000000000000000000000000"
AK = "E2EACCESSKEYEXAMPLE0"
SK = "e2e-secret-key-never-printed-9f3a7c"


def aomd_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "daemon.cli", *args]


class EmulatorProcess:
    """``aomd emulator`` in a subprocess, driven through its admin HTTP API."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def ledger(self) -> list[dict[str, Any]]:
        return list(self.admin("GET", "ledger")["entries"])

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("GET", "state")
        return result

    def changes(self, kind: str) -> list[dict[str, Any]]:
        return [e["change"] for e in self.ledger() if e["change"] and e["change"]["kind"] == kind]


@contextmanager
def emulator(
    scenario: Path, *, speed: float = 1.0, seed: int = 1, token: str | None = None
) -> Iterator[EmulatorProcess]:
    proc = subprocess.Popen(
        aomd_cmd(
            "emulator",
            "--port",
            "0",
            "--project-id",
            PROJECT,
            "--access-key",
            AK,
            "--secret-key",
            SK,
            "--scenario",
            str(scenario),
            "--speed",
            str(speed),
            "--seed",
            str(seed),
            *(["--token", token] if token else []),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            proc.kill()
            raise RuntimeError(f"emulator did not start: {line!r} {proc.stderr.read()!r}")  # type: ignore[union-attr]
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # type: ignore[union-attr]
        yield EmulatorProcess(proc, line.split()[2])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_settings(
    tmp: Path,
    url: str,
    *,
    extra: str = "",
    reconcile_interval: float = 5.0,
    http: bool = True,
    token: str | None = None,
    accounts: Mapping[str, str] | None = None,
) -> Path:
    """settings.toml for ``aomd run`` against ``url``: AK/SK from files, or ``token``.
    ``accounts`` (name -> AOM URL) for several, each with its own emulator; default one
    account ``e2e`` at ``url``."""
    (tmp / "secrets").mkdir(exist_ok=True)
    (tmp / "secrets" / "ak").write_text(AK)
    (tmp / "secrets" / "sk").write_text(SK)
    auth = (
        f'token = "{token}"'
        if token is not None
        else f'ak_file = "{tmp / "secrets" / "ak"}"\nsk_file = "{tmp / "secrets" / "sk"}"'
    )
    cfg = tmp / "settings.toml"
    cfg.write_text(
        f"""
state_dir = "{tmp / "state"}"
policies_dir = "{tmp / "policies"}"
reconcile_interval = {reconcile_interval}

{"".join(_account(name, at, auth) for name, at in (accounts or {"e2e": url}).items())}
[log]
format = "json"
level = "info"

[http]
{"port = 0" if http else "enabled = false"}

[watch]
fast_interval = 0.2
slow_interval = 1.0
discovery_interval = 5.0
{extra}
"""
    )
    return cfg


def _account(name: str, url: str, auth: str) -> str:
    return f"""
[[accounts]]
name = "{name}"
project_id = "{PROJECT}"
endpoints = {{aom = "{url}", dataarts = "{url}"}}
{auth}
requests_per_second = 200
burst = 50
"""


class DaemonProcess:
    """``aomd run`` in a subprocess with its JSON log lines collected as they arrive."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True),
            threading.Thread(target=self._pump, args=(proc.stderr,), daemon=True),
        ]
        for r in self._readers:
            r.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            with self._lock:
                self.lines.append(line)
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if isinstance(item, dict):
                    self.events.append(item)

    def output(self) -> str:
        with self._lock:
            return "".join(self.lines)

    def find(self, event: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("event") == event]

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) waiting for {what}:\n{self.output()[-4000:]}"
                )
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output()[-4000:]}")

    def wait_event(self, event: str, timeout: float = 20.0) -> dict[str, Any]:
        found: list[dict[str, Any]] = self.wait_for(lambda: self.find(event), timeout, event)
        return found[0]

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def start_daemon(cfg: Path, *args: str, env: dict[str, str] | None = None) -> DaemonProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("AOMD_CONFIG", None)
    proc = subprocess.Popen(
        aomd_cmd("--config", str(cfg), "run", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    return DaemonProcess(proc)


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class NotifySocket:
    """A datagram socket standing in for systemd's ``NOTIFY_SOCKET``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                break
            self.messages.extend(data.decode().splitlines())
        return self.messages

    def close(self) -> None:
        self.sock.close()


def send_signal_when(proc: subprocess.Popen[str], sig: int) -> None:
    os.kill(proc.pid, sig)
