"""Seeded fuzzing of what operators feed aomd: policy files, settings files, AOMD_* values.

The example policies, ``settings.toml`` and an iCalendar file are mutated (hostile values put in place of
real ones, hostile lines inserted, files cut short, bytes flipped) and run through the
real ``aomd validate`` code in-process (``validate_paths``; ``daemon.cli.main`` for
settings). Every input must end in exit 0 or 2 -- never a traceback, never exit 1 --
within ``MAX_SECONDS``, and within ``MAX_MIB``: of traced memory (tracemalloc, every
``TRACE_EVERY``-th input, as it makes YAML parsing 4x slower) and of growth of the
process's peak RSS (every input: a high-water mark, so no input went past it). Two cases also run as real
subprocesses, where a hang or a crash cannot hide behind the test process.

``AOMD_FUZZ_EXAMPLES=2000`` runs more inputs (the figures in the issue #18 note);
``AOMD_FUZZ_REPORT=FILE`` appends the figures as JSON lines.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import subprocess
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.calendar.plan import plan
from daemon.cli import main
from daemon.kernel.model import Workflow
from daemon.policy.loader import load_policy_dir
from daemon.policy.validate import validate_paths
from tests.support.processes import aomd_cmd

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("AOMD_FUZZ_EXAMPLES", "40"))
MAX_SECONDS = 5.0
"""Per input; generous for a loaded 2-core CI machine (the worst seen is far below)."""
MAX_MIB = 128.0
TRACE_EVERY = 4

DEEP = "[" * 200 + "]" * 200
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(7)
)
VALUES = [
    "99999999999999999999d",
    "P99999999999999999999D",
    "-1s",
    "1e308",
    "-1e308",
    ".nan",
    "100000000000000000000000",
    "-5",
    "0",
    "'x{99999999999999999999}'",
    "'(a+)+$'",
    "'(a)\\1'",
    "'(?<=x)y'",
    "'['",
    "'" + "A" * 300 + "'",
    "Europe/Berlin" + "/x" * 100,
    "Mars/Olympus",
    "/dev/zero",
    "/etc",
    "'1-0 * * * *'",
    "'* * * * * *'",
    "'@reboot'",
    "'61 25 32 13 8'",
    "&x [*x]",
    "*undefined",
    "!!python/object/apply:os.system ['true']",
    "!!binary AAAA",
    "~",
    "[]",
    "{}",
    '"\\0"',
    '"\\ud800"',
    "2026-13-45T25:61:61",
    "'2026-01-01T00:00:00+25:00'",
    DEEP,
    "{a: 1, a: 2}",
    "'" + "\u00e9" * 5000 + "'",
    "true",
    "''",
    '"BEGIN:VCALENDAR\\nBEGIN:VEVENT\\nDTSTART:2026\\nEND:VEVENT\\nEND:VCALENDAR"',
    '"BEGIN:VCALENDAR\\nBEGIN:VEVENT\\nUID:x\\nEND:VEVENT\\nEND:VCALENDAR"',
]
LINES = [
    "---\nrules: []",
    BOMB,
    "x: &x [*x]",
    "\t",
    "%YAML 9.9",
    "? [a, b]\n: c",
    "rules: {max_attempt: 3}",
    "calendars: {c: {ics: {path: /dev/zero}}}",
    "calendars: {c: {timezone: " + "A" * 300 + ", ranges: []}}",
    "schedules: {s: {cron: '1-0 * * * *', action: {execute: {workflow_id: w}}}}",
    "description: \x00",
    "x = " + DEEP,
    "[[rules]]\nname = 'r'\naction = 'restart'\nmatch = {output_regex = '(a)\\1'}",
    "z: " + "{a: " * 100 + "1" + "}" * 100,
]
ICS = (
    "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//fuzz//EN\nX-WR-TIMEZONE:America/New_York\n"
    "BEGIN:VTIMEZONE\nTZID:Custom\nBEGIN:STANDARD\nDTSTART:19701025T030000\n"
    "TZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\n"
    "END:STANDARD\nEND:VTIMEZONE\n"
    "BEGIN:VEVENT\nUID:h1\nSUMMARY:Holiday\nDTSTART;VALUE=DATE:20260704\n"
    "DTEND;VALUE=DATE:20260704\nEND:VEVENT\n"
    "BEGIN:VEVENT\nUID:m1\nSUMMARY:Maintenance\nDTSTART;TZID=Custom:20260105T220000\n"
    "DTEND;TZID=Custom:20260106T020000\nRRULE:FREQ=WEEKLY;COUNT=10\n"
    "EXDATE;TZID=Custom:20260112T220000\nEND:VEVENT\n"
    "BEGIN:VEVENT\nUID:m1\nRECURRENCE-ID;TZID=Custom:20260119T220000\n"
    "DTSTART;TZID=Custom:20260120T230000\nDTEND;TZID=Custom:20260121T010000\nEND:VEVENT\n"
    "BEGIN:VEVENT\nUID:f1\nDTSTART:20260301T100000\nDURATION:PT1H\n"
    "RDATE:20260401T100000\nEND:VEVENT\nEND:VCALENDAR\n"
)
ICS_VALUES = [
    "",
    "20260101",
    "20261301T000000Z",
    "2026",
    "FREQ=SECONDLY",
    "FREQ=MINUTELY;BYHOUR=1,2,3",
    "FREQ=DAILY;UNTIL=2026",
    "FREQ=WEEKLY;BYDAY= TU",
    "FREQ=YEARLY;COUNT=99999999999999999999",
    "-P1D",
    "P999999999999999999W",
    "PT0S",
    "19000101T000000Z",
    "99991231T235959Z",
    "Custom",
    "\\",
    "x" * 10_000,
]
ICS_LINES = [
    "BEGIN:VEVENT\nUID:n\nEND:VEVENT",
    "DTSTART:20260102T000000Z",
    "DTEND;VALUE=DATE:20260101",
    "RRULE:FREQ=DAILY",
    "DURATION:PT5H",
    "BEGIN:VCALENDAR",
    "END:VCALENDAR",
    "BEGIN:VALARM\nTRIGGER:-PT15M\nEND:VALARM",
    "RECURRENCE-ID:20260105T220000Z",
    "X-WR-TIMEZONE:" + "A" * 300,
    "DTSTART;TZID=Nowhere/Zone:20260101T000000",
]
ENV_NAMES = [
    "AOMD_HTTP",
    "AOMD_HTTP__PORT",
    "AOMD_ACCOUNTS",
    "AOMD_ACCOUNTS__0__NAME",
    "AOMD_ACCOUNTS__3__REGION",
    "AOMD_STATE_DIR",
    "AOMD_POLICIES_DIR",
    "AOMD_LOG__LEVEL",
    "AOMD_WATCH",
    "AOMD_SAFETY__DRY_RUN",
    "AOMD_JOURNAL__PATH",
    "AOMD_EMULATOR__START",
    "AOMD_RECONCILE_INTERVAL",
]
ENV_VALUES = [
    "notjson",
    "{}",
    "null",
    "[]",
    "x" * 100_000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    "1e999",
    "-1",
    "true",
    '{"port": 99999}',
    '[{"name": "a"}]',
    "/nonexistent",
    "\u00e9\u00e9",
    "",
]


@dataclass
class Figures:
    """What one fuzz run saw, for the closing note of issue #18."""

    name: str
    exits: Counter[int] = field(default_factory=Counter)
    max_seconds: float = 0.0
    total_seconds: float = 0.0
    max_mib: float = 0.0
    traced: int = 0
    worst: str = ""
    rss_start: float = field(default_factory=lambda: _max_rss_mib())

    def measure(self, label: str, run: Callable[[], int]) -> int:
        trace = sum(self.exits.values()) % TRACE_EVERY == 0
        if trace:
            tracemalloc.start()
        start = time.perf_counter()
        try:
            code = run()
        finally:
            elapsed = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1] / (1 << 20) if trace else 0.0
            tracemalloc.stop()
        self.traced += trace
        rss_growth = _max_rss_mib() - self.rss_start
        assert rss_growth < MAX_MIB, f"peak RSS grew {rss_growth:.0f} MiB at {label[:300]!r}"
        self.exits[code] += 1
        self.total_seconds += elapsed
        if elapsed > self.max_seconds:
            self.max_seconds, self.worst = elapsed, label[:120]
        self.max_mib = max(self.max_mib, peak)
        assert code in (0, 2), f"exit {code} for {label[:300]!r}"
        assert elapsed < MAX_SECONDS, f"{elapsed:.1f} s for {label[:300]!r}"
        assert peak < MAX_MIB, f"{peak:.0f} MiB for {label[:300]!r}"
        return code

    def report(self) -> None:
        doc = {
            "fuzz": self.name,
            "inputs": sum(self.exits.values()),
            "exits": dict(sorted(self.exits.items())),
            "max_seconds": round(self.max_seconds, 3),
            "total_seconds": round(self.total_seconds, 2),
            "max_traced_mib": round(self.max_mib, 1),
            "traced_inputs": self.traced,
            "peak_rss_growth_mib": round(_max_rss_mib() - self.rss_start, 1),
            "slowest": self.worst,
        }
        print(json.dumps(doc))
        target = os.environ.get("AOMD_FUZZ_REPORT")
        if target:
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(doc) + "\n")


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


Edit = tuple[str, int, int]
edits = st.lists(
    st.one_of(
        st.tuples(st.just("value"), st.integers(0, 10_000), st.integers(0, len(VALUES) - 1)),
        st.tuples(st.just("line"), st.integers(0, 10_000), st.integers(0, len(LINES) - 1)),
        st.tuples(st.just("cut"), st.integers(0, 10_000), st.just(0)),
        st.tuples(st.just("byte"), st.integers(0, 10_000), st.integers(0, 255)),
    ),
    min_size=1,
    max_size=3,
)


def mutate(text: str, ops: list[Edit]) -> bytes:
    """Apply the edits: a value replaced, a line inserted, the file cut, a byte changed."""
    lines = text.splitlines()
    raw: bytes | None = None
    for kind, at, what in ops:
        if kind == "value":
            candidates = [i for i, ln in enumerate(lines) if ":" in ln or "=" in ln]
            if candidates:
                i = candidates[at % len(candidates)]
                sep = ":" if ":" in lines[i] else "="
                lines[i] = lines[i].split(sep, 1)[0] + f"{sep} {VALUES[what]}"
        elif kind == "line":
            lines.insert(at % (len(lines) + 1), LINES[what])
        elif kind == "cut":
            lines = lines[: at % (len(lines) + 1)]
        else:
            data = bytearray("\n".join(lines).encode())
            if data:
                data[at % len(data)] = what
            raw = bytes(data)
            lines = raw.decode("utf-8", "replace").splitlines()
    return raw if raw is not None else ("\n".join(lines) + "\n").encode()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_fuzzed_policy_sets_exit_0_or_2(tmp_path: Path) -> None:
    examples = sorted((ROOT / "policies").glob("*.example.*"))
    figures = Figures("policies")
    with quiet():  # imports and first-use caches are not the inputs' cost
        assert validate_paths([ROOT / "policies"]) == 0

    pol = tmp_path / "pol"
    shutil.copytree(ROOT / "policies", pol)

    @FUZZ
    @given(st.integers(0, len(examples) - 1), edits)
    def one(which: int, ops: list[Edit]) -> None:
        target = pol / examples[which].name
        target.write_bytes(mutate(examples[which].read_text(), ops))
        try:
            with quiet():
                figures.measure(f"{target.name} {ops}", lambda: validate_paths([pol]))
        finally:
            shutil.copyfile(examples[which], target)

    one()
    figures.report()
    assert figures.exits[2] > 0  # the mutations really do break files


def test_fuzzed_settings_and_variables_exit_0_or_2(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    original = (ROOT / "settings.toml").read_text()
    figures = Figures("settings")
    env_items = st.dictionaries(st.sampled_from(ENV_NAMES), st.sampled_from(ENV_VALUES), max_size=2)

    @FUZZ
    @given(edits, env_items)
    def one(ops: list[Edit], env: dict[str, str]) -> None:
        cfg = tmp_path / "settings.toml"
        cfg.write_bytes(mutate(original, ops))
        args = ["--config", str(cfg), "validate"]
        with environment(env), quiet():
            figures.measure(f"{ops} {env}", lambda: main(args))

    with environment({"AOMD_CONFIG": ""}):
        os.environ.pop("AOMD_CONFIG")
        one()
    figures.report()
    assert figures.exits[2] > 0


def test_fuzzed_ics_calendars_exit_0_or_2(tmp_path: Path) -> None:
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "cal.yaml").write_text(
        "calendars:\n  c:\n    timezone: Europe/Berlin\n    ics: {path: f.ics, strict: STRICT}\n"
        "triggers:\n  - {name: t, select: {names: ['*']}, off_during: c}\n"
        "schedules:\n  - {name: s, ics: f.ics, action: {execute: {workflow_id: w}}}\n"
    )
    template = (pol / "cal.yaml").read_text()
    figures = Figures("ics")
    (pol / "cal.yaml").write_text(template.replace("STRICT", "true"))
    (pol / "f.ics").write_text(ICS)
    with quiet():  # imports and first-use caches are not the inputs' cost
        assert validate_then_plan(pol) == 0
    ics_edits = st.lists(
        st.one_of(
            st.tuples(
                st.just("value"), st.integers(0, 10_000), st.integers(0, len(ICS_VALUES) - 1)
            ),
            st.tuples(st.just("line"), st.integers(0, 10_000), st.integers(0, len(ICS_LINES) - 1)),
            st.tuples(st.just("cut"), st.integers(0, 10_000), st.just(0)),
            st.tuples(st.just("byte"), st.integers(0, 10_000), st.integers(0, 255)),
        ),
        min_size=1,
        max_size=3,
    )

    @FUZZ
    @given(ics_edits, st.booleans())
    def one(ops: list[Edit], strict: bool) -> None:
        (pol / "cal.yaml").write_text(template.replace("STRICT", str(strict).lower()))
        (pol / "f.ics").write_bytes(mutate_ics(ICS, ops))
        with quiet():
            figures.measure(f"{ops} strict={strict}", lambda: validate_then_plan(pol))

    one()
    figures.report()
    assert figures.exits[2] > 0


def validate_then_plan(pol: Path) -> int:
    """What the daemon does with a valid file: expand it, here over a whole year."""
    code = validate_paths([pol])
    if code == 0:
        policy = load_policy_dir(pol)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        plan(
            policy.built_calendars,
            policy.triggers,
            policy.schedules,
            [Workflow(id="w", name="w", type="cron", tags={}, trigger_status="enable")],
            start,
            start + timedelta(days=365),
            schedule_sources=policy.schedule_sources,
        )
    return code


def mutate_ics(text: str, ops: list[Edit]) -> bytes:
    """Like ``mutate``, with iCalendar values (``NAME;PARAMS:value``) and lines."""
    lines = text.splitlines()
    raw: bytes | None = None
    for kind, at, what in ops:
        if kind == "value":
            i = at % len(lines) if lines else 0
            if lines and ":" in lines[i]:
                lines[i] = lines[i].split(":", 1)[0] + ":" + ICS_VALUES[what]
        elif kind == "line":
            lines.insert(at % (len(lines) + 1), ICS_LINES[what])
        elif kind == "cut":
            lines = lines[: at % (len(lines) + 1)]
        else:
            data = bytearray("\n".join(lines).encode())
            if data:
                data[at % len(data)] = what
            raw = bytes(data)
            lines = raw.decode("utf-8", "replace").splitlines()
    return raw if raw is not None else ("\n".join(lines) + "\n").encode()


def test_hostile_inputs_in_a_real_subprocess(tmp_path: Path) -> None:
    """No traceback and no hang where nothing in-process could catch them."""
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "bomb.yaml").write_text(BOMB)
    (pol / "nul.yaml").write_text("description: \x00\n")
    env = {**os.environ, "AOMD_HTTP": "notjson"}
    env.pop("AOMD_CONFIG", None)
    for args, extra in ((["validate", str(pol)], {}), (["validate"], {"AOMD_HTTP": "notjson"})):
        proc = subprocess.run(
            aomd_cmd(*args),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={**env, **extra} if extra else {k: v for k, v in env.items() if k != "AOMD_HTTP"},
            check=False,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        if not extra:
            assert "bomb.yaml:" in proc.stderr
            assert "nul.yaml:1:" in proc.stderr
        else:
            assert "AOMD_HTTP='notjson': not valid JSON" in proc.stderr
