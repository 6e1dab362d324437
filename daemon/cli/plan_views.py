"""``aomd plan --ics`` and ``--html``: the plan as a calendar file and as a picture.

Both are built from the same rows as the table (``daemon.calendar.plan``) plus the
windows of the calendars the policy acts on, turned into spans: a trigger is *off* from a
disable to the next enable, a calendar is a freeze while its window lasts, an override
while it is in force; runs are points. The HTML page is one self-contained file (inline
SVG and CSS, one inline script that only counts what was drawn, no fonts, no network),
so it can be mailed or attached to a change ticket; hovering a band shows its reason
(SVG ``<title>``).
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.calendar.calendar import Calendar
from daemon.calendar.plan import PlanItem

__all__ = ["Band", "Mark", "spans", "to_html", "to_ics"]


@dataclass(frozen=True, slots=True)
class Band:
    row: str
    start: datetime
    end: datetime
    kind: str
    """``on`` | ``off`` (a trigger), ``calendar`` (a calendar window), ``override``."""
    label: str


@dataclass(frozen=True, slots=True)
class Mark:
    row: str
    at: datetime
    kind: str
    """``run`` | ``skip`` | ``catch-up``."""
    label: str


def spans(
    items: Sequence[PlanItem],
    calendars: Mapping[str, Calendar],
    watched: Sequence[str],
    start: datetime,
    end: datetime,
) -> tuple[list[Band], list[Mark]]:
    """Bands (trigger on/off per workflow, calendar windows, overrides) and run marks."""
    bands: list[Band] = []
    marks: list[Mark] = []
    per_wf: dict[str, list[PlanItem]] = {}
    for it in items:
        if it.kind == "trigger" and it.workflow_id is not None:
            per_wf.setdefault(it.workflow_id, []).append(it)
        elif it.kind == "run":
            kind = "catch-up" if it.catch_up else ("skip" if it.skipped else "run")
            label = f"{kind} {it.schedule}: {it.action}" + (f" - {it.reason}" if it.reason else "")
            marks.append(Mark(f"schedule {it.schedule}", it.at, kind, label))
    for changes in per_wf.values():
        first = changes[0]
        row = f"trigger {first.workflow_name or first.workflow_id}"
        state = first.enable if first.initial else not first.enable
        why = (first.reason or "") if first.initial else "state before the period"
        at = start
        for it in changes if not first.initial else changes[1:]:
            if it.enable == state:
                continue
            if it.at > at:
                bands.append(Band(row, at, it.at, "on" if state else "off", why))
            at, state = it.at, bool(it.enable)
            why = f"{it.rule}: {it.reason}" if it.rule else it.reason or ""
        bands.append(Band(row, at, end, "on" if state else "off", why))
    for name in watched:
        cal = calendars.get(name)
        if cal is None:
            continue
        for w in cal.windows(start, end):
            label = f"calendar {name} active"
            bands.append(Band(f"calendar {name}", w.start, w.end, "calendar", label))
    opened: dict[str, PlanItem] = {}
    for it in items:
        if it.kind != "override" or it.rule is None:
            continue
        if it.rule in opened:
            o = opened.pop(it.rule)
            bands.append(Band(it.rule, o.at, it.at, "override", o.reason or ""))
        else:
            opened[it.rule] = it
    for rule, o in opened.items():
        bands.append(Band(rule, o.at, end, "override", o.reason or ""))
    return bands, marks


def _uid(*parts: object) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]
    return f"{digest}@aomd-plan"


def to_ics(bands: Sequence[Band], marks: Sequence[Mark], stamp: datetime) -> bytes:
    """An iCalendar (RFC 5545) that imports into calendar apps: trigger-off spans,
    calendar windows (freezes, holidays, working time) and overrides as events with their
    reason; runs as 5-minute events."""
    from icalendar import Calendar as ICal
    from icalendar import Event

    cal = ICal()
    cal.add("prodid", "-//aomd//plan//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "aomd plan")
    for b in bands:
        if b.kind == "on":
            continue  # the normal state: only what aomd holds off is news
        ev = Event()
        title = {
            "off": f"{b.row.removeprefix('trigger ')} trigger off",
            "calendar": f"{b.row} active",
            "override": f"override {b.row.removeprefix('override:')}",
        }[b.kind]
        ev.add("uid", _uid(b.kind, b.row, b.start, b.end))
        ev.add("dtstamp", stamp)
        ev.add("dtstart", b.start)
        ev.add("dtend", b.end)
        ev.add("summary", title)
        ev.add("description", b.label)
        ev.add("categories", [b.kind])
        cal.add_component(ev)
    for m in marks:
        ev = Event()
        ev.add("uid", _uid(m.kind, m.row, m.at))
        ev.add("dtstamp", stamp)
        ev.add("dtstart", m.at)
        ev.add("dtend", m.at + timedelta(minutes=5))
        ev.add("summary", f"{m.kind}: {m.row.removeprefix('schedule ')}")
        ev.add("description", m.label)
        ev.add("categories", [m.kind])
        cal.add_component(ev)
    return bytes(cal.to_ical())


_COLORS = {
    "on": "#4caf50",
    "off": "#e53935",
    "calendar": "#90a4ae",
    "override": "#ffb300",
    "run": "#1e88e5",
    "skip": "#e53935",
    "catch-up": "#8e24aa",
}


def to_html(
    bands: Sequence[Band], marks: Sequence[Mark], start: datetime, end: datetime, title: str
) -> str:
    """One self-contained page: a row per trigger, calendar, override and schedule."""
    rows: list[str] = []
    for b in bands:
        if b.row not in rows:
            rows.append(b.row)
    for m in marks:
        if m.row not in rows:
            rows.append(m.row)
    left, width, row_h = 260, 1000, 26
    span = (end - start).total_seconds() or 1.0

    def x(t: datetime) -> float:
        return left + width * max(0.0, min(1.0, (t - start).total_seconds() / span))

    out: list[str] = []
    height = 40 + row_h * len(rows)
    ticks = []
    days = max(1, int(span // 86400))
    step = max(1, days // 10)
    t = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while t <= end:
        if t >= start:
            ticks.append(
                f'<line class="tick" x1="{x(t):.1f}" y1="20" x2="{x(t):.1f}" y2="{height}"/>'
                f'<text class="tick" x="{x(t) + 2:.1f}" y="14">{t:%m-%d}</text>'
            )
        t += timedelta(days=step)
    out.extend(ticks)
    for i, row in enumerate(rows):
        y = 24 + i * row_h
        out.append(f'<text class="row" x="4" y="{y + 16}">{html.escape(row)}</text>')
        for b in (b for b in bands if b.row == row):
            w = max(1.0, x(b.end) - x(b.start))
            tip = html.escape(
                f"{b.kind} {b.start:%Y-%m-%d %H:%M} - {b.end:%Y-%m-%d %H:%M} UTC: {b.label}"
            )
            out.append(
                f'<rect class="band {b.kind}" x="{x(b.start):.1f}" y="{y + 3}" width="{w:.1f}" '
                f'height="{row_h - 8}" fill="{_COLORS[b.kind]}"><title>{tip}</title></rect>'
            )
        for m in (m for m in marks if m.row == row):
            tip = html.escape(f"{m.at:%Y-%m-%d %H:%M} UTC {m.label}")
            out.append(
                f'<circle class="mark {m.kind}" cx="{x(m.at):.1f}" cy="{y + row_h / 2 - 1}" r="5" '
                f'fill="{_COLORS[m.kind]}"><title>{tip}</title></circle>'
            )
    legend = " ".join(
        f'<span class="key"><i style="background:{c}"></i>{k}</span>' for k, c in _COLORS.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font: 13px sans-serif; margin: 16px; color: #222; }}
svg text.row {{ font-size: 12px; }} svg text.tick {{ font-size: 10px; fill: #666; }}
svg line.tick {{ stroke: #ddd; }} .key {{ margin-right: 12px; }}
.key i {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; }}
rect.band:hover, circle.mark:hover {{ stroke: #000; stroke-width: 1.5; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC. Hover a band or a run for its reason.</p>
<p>{legend}</p>
<svg id="plan" xmlns="http://www.w3.org/2000/svg" width="{left + width + 20}" height="{height}">
{chr(10).join(out)}
</svg>
<script>
// What the browser drew, for tests and for the curious: counts of shapes that have a
// rendered size, by kind (no network, nothing else).
addEventListener("load", () => {{
  const drawn = {{}};
  for (const el of document.querySelectorAll("#plan .band, #plan .mark")) {{
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.height > 0) {{
      const kind = el.classList[1];
      drawn[kind] = (drawn[kind] || 0) + 1;
    }}
  }}
  document.body.dataset.drawn = JSON.stringify(drawn);
}});
</script>
</body></html>
"""
