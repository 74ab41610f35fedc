"""How much time a maintenance policy leaves GKE for upgrades: the 48 hours in every 32 days.

GKE refuses (at `pulumi up`, not before) a maintenance policy whose recurring window, minus its
NO_UPGRADES exclusions, leaves less than 48 hours of availability in some rolling 32-day period
(GKE docs, "Configure maintenance windows and exclusions"; the API answers "would go longer than
32d without 48h maintenance availability"). Only NO_UPGRADES exclusions count against it: the
narrower scopes still let GKE patch the control plane, and GKE lets them last far beyond 32 days.

Pure functions over plain values; `domain.config` turns the result into a Problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from domain.settings import MAINTENANCE_AVAILABILITY_PERIOD, MIN_MAINTENANCE_AVAILABILITY

# The two RRULE forms this project accepts (and GKE's examples use): every day, or a weekly set
# of days. Anything else (INTERVAL, BYMONTHDAY, ...) would need a full RFC 5545 expander.
RECURRENCE = re.compile(r"^FREQ=(?:DAILY|WEEKLY;BYDAY=(?:MO|TU|WE|TH|FR|SA|SU)(?:,(?:MO|TU|WE|TH|FR|SA|SU))*)$")
RECURRENCE_HELP = "FREQ=DAILY or FREQ=WEEKLY;BYDAY=<days> with days from MO,TU,WE,TH,FR,SA,SU (e.g. FREQ=WEEKLY;BYDAY=SA,SU)"
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Availability:
    """The least maintenance time any 32-day period gets, and the first period that gets it."""

    least: timedelta
    period_start: datetime

    @property
    def enough(self) -> bool:
        return self.least >= MIN_MAINTENANCE_AVAILABILITY


def window_days(recurrence: str) -> frozenset[int]:
    """Weekdays (Monday = 0) on which the window opens. Raises ValueError for another form."""
    if not RECURRENCE.match(recurrence):
        raise ValueError(f"unsupported recurrence {recurrence!r}; use {RECURRENCE_HELP}")
    if recurrence == "FREQ=DAILY":
        return frozenset(range(7))
    return frozenset(_WEEKDAYS.index(day) for day in recurrence.split("BYDAY=")[1].split(","))


def _windows(start: datetime, end: datetime, days: frozenset[int], until: datetime) -> list[Interval]:
    """Every opening of the window from its first start to `until` (RRULE: same time of day)."""
    length, day, found = end - start, start, []
    while day < until:
        if day.weekday() in days:
            found.append((day, day + length))
        day += timedelta(days=1)
    return found


def _minus(windows: Sequence[Interval], blocked: Sequence[Interval]) -> list[Interval]:
    left = list(windows)
    for b_start, b_end in blocked:
        cut = []
        for w_start, w_end in left:
            if w_end <= b_start or w_start >= b_end:
                cut.append((w_start, w_end))
                continue
            if w_start < b_start:
                cut.append((w_start, b_start))
            if w_end > b_end:  # pragma: no mutate: >= adds (b_end, b_end), zero length: no open time changes, its end only adds a candidate start
                cut.append((b_end, w_end))
        left = cut
    return left


def _covered(intervals: Iterable[Interval], start: datetime, end: datetime) -> timedelta:
    return sum((min(e, end) - max(s, start) for s, e in intervals if e > start and s < end), timedelta())


def least_availability(start: datetime, end: datetime, recurrence: str,
                       no_upgrades: Sequence[Interval] = ()) -> Availability:
    """The minimum, over every 32-day period from the first window on, of the maintenance time
    left once the NO_UPGRADES exclusions are cut out.

    The periods examined reach 32 days past the last exclusion, after which the weekly pattern
    only repeats. Availability in a sliding period changes slope only where the period's start
    or end crosses a boundary of the open time (the exclusions already cut out), and it stops
    falling only where the start leaves open time or the end reaches it: the least is at one of
    those starts (or the first). Exclusion boundaries add no candidate: where one falls inside a
    window it is an open-time boundary; elsewhere the slope does not change there."""
    period = MAINTENANCE_AVAILABILITY_PERIOD
    last = max([start, *(e for _, e in no_upgrades)])
    horizon_end = last + period + timedelta(days=8)
    open_times = _minus(_windows(start, end, window_days(recurrence), horizon_end), sorted(no_upgrades))
    candidates = {start} | {e for _, e in open_times} | {s - period for s, _ in open_times}
    starts = sorted(t for t in candidates if start <= t and t + period <= horizon_end)
    least, at = min(((_covered(open_times, t, t + period), t) for t in starts), key=lambda pair: pair[0])
    return Availability(least, at)


def hours(delta: timedelta) -> str:
    value = delta.total_seconds() / 3600
    return f"{value:g} h" if value == int(value) else f"{value:.1f} h"
