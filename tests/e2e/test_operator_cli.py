"""What a new operator types and gets wrong, as real subprocesses (issue #15): every bad
input is one message naming the setting and the fix, never a traceback, with exit 2 for
configuration and usage, 1 for runtime."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from daemon import __version__
from tests.support.processes import aomd_cmd

EMULATOR_ACCOUNT = """
state_dir = "state"
[[accounts]]
name = "emu"
project_id = "abcdefabcdefabcdefabcdefabcdef12"
emulator = true
[log]
format = "console"
"""


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("AOMD_")}
    return subprocess.run(
        aomd_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**full, **(env or {})},
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "settings.toml").write_text(EMULATOR_ACCOUNT)
    (tmp_path / "policies").mkdir()
    return tmp_path


def test_a_taken_http_port_is_one_line_naming_the_setting(workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("run", cwd=workdir, env={"AOMD_HTTP__PORT": str(port)})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"aomd: ListenError: cannot serve /healthz and /metrics on 127.0.0.1:{port}"
    )
    assert "address already in use" in last
    assert "http.port (AOMD_HTTP__PORT)" in last


def test_accounts_from_the_environment_that_are_not_json(workdir: Path) -> None:
    result = _run("validate", cwd=workdir, env={"AOMD_ACCOUNTS": "[{name:x}]"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "environment variable AOMD_ACCOUNTS: not valid JSON" in result.stderr


def test_version_flag_and_config_after_the_command(workdir: Path, tmp_path: Path) -> None:
    version = _run("--version", cwd=workdir)
    assert (version.returncode, version.stdout) == (0, f"aomd {__version__}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "policies").mkdir()
    (elsewhere / "policies" / "r.yaml").write_text("rules: [{name: r, action: restart}]\n")
    (elsewhere / "s.toml").write_text(EMULATOR_ACCOUNT)
    after = _run("validate", "--config", str(elsewhere / "s.toml"), cwd=workdir)
    assert (after.returncode, after.stdout) == (
        0,
        "ok: 1 rule, 0 calendars, 0 trigger rules, 0 schedules\n",
    )


def test_bad_times_are_usage_errors_not_configuration_errors(workdir: Path) -> None:
    since = _run("history", "--since", "10x", cwd=workdir)
    assert since.returncode == 2
    assert since.stderr.startswith("aomd history: error: invalid --since '10x'")
    assert "configuration error" not in since.stderr
    backwards = _run("plan", "--from", "2026-12-10", "--until", "2026-12-01", cwd=workdir)
    assert backwards.returncode == 2
    assert backwards.stderr.startswith(
        "aomd plan: error: --until 2026-12-01T00:00:00+00:00 is not after --from"
    )


def test_emulator_refuses_to_start_without_credentials(workdir: Path) -> None:
    result = _run("emulator", "--port", "0", cwd=workdir, timeout=20)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no credentials: every request would be refused with 401" in result.stderr


def test_emulator_help_shows_defaults_and_the_settings_project_id_never_a_secret(
    workdir: Path,
) -> None:
    result = _run("emulator", "--help", cwd=workdir, env={"AOMD_EMULATOR_TOKEN": "s3cr3t-tok"})
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "abcdefabcdefabcdefabcdefabcdef12, from settings.toml" in text
    assert "(default: 127.0.0.1)" in text
    assert "(default: 1000000)" in text
    assert "$AOMD_EMULATOR_TOKEN, now set" in text
    assert "s3cr3t-tok" not in result.stdout


def test_emulator_listening_line_says_the_clock_speed(workdir: Path) -> None:
    proc = subprocess.Popen(
        aomd_cmd("emulator", "--port", "0", "--token", "t", "--speed", "60"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=workdir,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(10)
    assert line.startswith("listening on http://127.0.0.1:")
    assert "(clock: 60x real time from " in line


def test_json_answers_carry_no_log_lines(workdir: Path) -> None:
    """``--json`` output is for programs: what the parts log goes to stderr, not stdout."""
    assert _run("run", "--once", cwd=workdir).returncode == 0
    for command in (("status", "--json"), ("history", "--json")):
        result = _run(*command, cwd=workdir)
        assert result.returncode == 0, result.stderr
        for line in result.stdout.splitlines():
            assert line.startswith(("{", "[")), (command, line)
        assert "journal_opened" not in result.stdout + result.stderr
