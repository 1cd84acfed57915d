"""What the report says: regressions, fixes, flakes, the matrix and the metric trends.

Works on rounds: the runs that share a batch (a nightly's matrix cells) or a single run.
A test is compared with the same test in the same matrix cell (backend/profile/broker) in
the most recent earlier round that ran it, so a nightly cell is compared with that cell
last night, not with whatever ran last.
"""

from __future__ import annotations

import itertools
import re
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from harness.report.history import (
    BAD_OUTCOMES,
    NOT_APPLICABLE_STATUS,
    STATUSES,
    LoadedHistory,
    RunRecord,
    TestRecord,
)
from harness.spec_items import Family, family_of

# Device metrics the HIL fixtures record, in display order, with their units.
KNOWN_METRICS: dict[str, tuple[str, str]] = {
    "boot_to_connected_ms": ("Boot to connected (reset → Connected to MQTT Broker)", "ms"),
    "heap_free_bytes": ("Free heap at the last Memory free line", "bytes"),
    "heap_loss_bytes_per_message": ("Heap lost per message (leak rate)", "bytes"),
    "suite_duration_s": ("Suite duration", "s"),
    "connect_ms": ("MQTT connect time", "ms"),
    "tls_handshake_ms": ("TLS handshake time", "ms"),
    "echo_rtt_p50_ms": ("Echo round trip, p50", "ms"),
    "echo_rtt_p95_ms": ("Echo round trip, p95", "ms"),
    "messages_sent": ("Messages sent", "messages"),
    "messages_received": ("Messages received", "messages"),
}

NO_CELL = "local"
# Status -> the colour class it is shown in (bad: red, passed: green, the rest: neutral).
STATE_OF: dict[str | None, str] = {
    "passed": "pass", "failed": "fail", "error": "fail", "skipped": "skip",
    NOT_APPLICABLE_STATUS: "na", "xfailed": "skip", None: "none",
}  # the column for tests that ran without HIL context (unit tests)


@dataclass
class Round:
    """One report round: the runs of a batch and all their results."""

    name: str
    runs: list[RunRecord]
    results: dict[tuple[str, str], TestRecord]
    run_of: dict[tuple[str, str], RunRecord] = field(default_factory=dict)

    @property
    def started(self) -> float:
        return min(run.started for run in self.runs)

    @property
    def finished(self) -> float:
        return max(run.finished for run in self.runs)

    @property
    def counts(self) -> Counter[str]:
        """Tests per status (``passed`` … ``n/a``), skips that did not apply told apart."""
        return Counter(record.status for record in self.results.values())

    @property
    def label(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(self.started))


@dataclass
class Change:
    """A test whose outcome turned bad (a new failure) or good (a fix) since its last round."""

    record: TestRecord
    previous: TestRecord
    previous_round: Round


@dataclass
class Flake:
    """A test that flipped between pass and fail within the window."""

    record: TestRecord
    outcomes: list[str | None]  # per round, oldest first; None = not run
    flips: int


@dataclass
class CellStatus:
    """Outcome counts of one matrix cell (spec item × backend/profile/broker) in one round."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def state(self) -> str:
        if any(self.counts[o] for o in BAD_OUTCOMES):
            return "fail"
        if self.counts["passed"]:
            return "pass"
        if self.counts and set(+self.counts) == {NOT_APPLICABLE_STATUS}:
            return "na"
        return "skip" if self.counts else "none"

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def parts(self) -> list[tuple[str, str]]:
        """(state, text) per status present, e.g. [("pass", "1 passed"), ("skip", "3
        skipped")]: a skip is never folded into a pass."""
        return [(STATE_OF[s], f"{self.counts[s]} {s}") for s in STATUSES if self.counts[s]]

    @property
    def text(self) -> str:
        return ", ".join(text for _, text in self.parts) or "not run"


# Which of an item's tests speaks for it in a cell's verdict (the worst; n/a last).
_ITEM_RANK = {"error": 0, "failed": 1, "passed": 2, "skipped": 3, "xfailed": 4,
              NOT_APPLICABLE_STATUS: 5}


@dataclass
class FamilyVerdict:
    """One part of the spec (S1–S13, R1–R6) in one matrix cell in one round, counted by
    item: each item's outcome is that of its worst test."""

    family: Family
    records: dict[str, TestRecord] = field(default_factory=dict)  # item -> its record

    def add(self, record: TestRecord) -> None:
        current = self.records.get(record.spec_item)
        if current is None or _ITEM_RANK[record.status] < _ITEM_RANK[current.status]:
            self.records[record.spec_item] = record

    @property
    def status(self) -> CellStatus:
        return CellStatus(Counter(r.status for r in self.records.values()))

    @property
    def not_run(self) -> list[str]:
        """Items of the family this cell has no test of (none when nothing of it ran)."""
        if not self.records:
            return []
        return [item for item in self.family.items if item not in self.records]

    @property
    def parts(self) -> list[tuple[str, str]]:
        """(state, text) per status present, failures naming their items, then the items
        that did not run: [("fail", "1 failed (R3)"), ("pass", "5 passed")]."""
        by_status: dict[str, list[str]] = defaultdict(list)
        for item, record in self.records.items():
            by_status[record.status].append(item)
        parts = []
        for status in STATUSES:
            items = by_status.get(status)
            if items:
                named = (f" ({', '.join(sorted(items, key=natural_key))})"
                         if status in BAD_OUTCOMES else "")
                parts.append((STATE_OF[status], f"{len(items)} {status}{named}"))
        if self.not_run:
            parts.append(("none", f"{len(self.not_run)} not run"))
        return parts

    @property
    def text(self) -> str:
        return ", ".join(text for _, text in self.parts) or "not run"


@dataclass
class CellVerdicts:
    """A matrix cell (board/profile/broker) over the rounds: its core spec and resilience
    verdicts, one per round (oldest first)."""

    cell: str
    core: list[FamilyVerdict]
    resilience: list[FamilyVerdict]


@dataclass
class Trend:
    """One device metric over rounds: a series per matrix cell, (round index, median value)."""

    metric: str
    title: str
    unit: str
    series: dict[str, list[tuple[int, float]]]


# A metric shift worth a line at the top: the latest value differs from the median of up
# to BASELINE_ROUNDS earlier rounds by more than SHIFT_RATIO and more than the unit's floor.
BASELINE_ROUNDS = 7
SHIFT_RATIO = 0.5
SHIFT_FLOOR = {"ms": 200.0, "bytes": 1024.0, "s": 10.0}
# A program that keeps 32 bytes per message runs out of an ESP32's heap within hours.
METRIC_SHIFT_FLOOR = {"heap_loss_bytes_per_message": 32.0}


@dataclass
class Shift:
    """A device metric that moved a lot in the latest round, in one cell."""

    trend: Trend
    cell: str
    before: float  # median of the earlier rounds
    now: float
    since: str  # label of the first round of the new level

    @property
    def text(self) -> str:
        verb = "rose" if self.now > self.before else "fell"
        return (f"{self.trend.title} {verb} from {_fmt(self.before)} to {_fmt(self.now)} "
                f"{self.trend.unit}")


def _fmt(value: float) -> str:
    value = 0.0 if abs(value) < 0.005 else value  # no "-0"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


@dataclass
class ReportModel:
    rounds: list[Round]
    new_failures: list[Change]
    fixes: list[Change]
    still_failing: list[TestRecord]
    flaky: list[Flake]
    matrix_rows: list[str]
    matrix_cols: list[str]
    matrix: dict[tuple[str, str], list[CellStatus]]
    trends: list[Trend]
    damage: list[str]
    shifts: list[Shift] = field(default_factory=list)
    cells: list[CellVerdicts] = field(default_factory=list)

    @property
    def latest(self) -> Round:
        return self.rounds[-1]

    @property
    def previous(self) -> Round | None:
        return self.rounds[-2] if len(self.rounds) > 1 else None

    @property
    def regressed(self) -> bool:
        """True when something that passed last time fails now (``--fail-on-regression``)."""
        return bool(self.new_failures)

    @property
    def verdict(self) -> str:
        counts = self.latest.counts
        total = sum(counts.values())
        bad = counts["failed"] + counts["error"]
        ran = bad + counts["passed"]
        since = f" since {self.previous.label}" if self.previous else ""
        parts: list[str] = []
        if self.previous is None:
            parts.append(f"first recorded round: {bad} of {plural(ran, 'test')} failing"
                         if bad else f"first recorded round: {_all_passed(ran, total)}")
        elif self.new_failures:
            parts.append(plural(len(self.new_failures), "new failure") + since)
        elif bad:
            parts.append(f"no new failures{since}; " + plural(bad, "test") + " still failing")
        else:
            parts.append(_all_passed(ran, total))
        if self.fixes:
            parts.append(plural(len(self.fixes), "fix", "fixes"))
        if self.flaky:
            parts.append(plural(len(self.flaky), "flaky test"))
        if self.shifts:
            parts.append(plural(len(self.shifts), "device metric shift"))
        text = ", ".join(parts)
        return text[0].upper() + text[1:]

    @property
    def verdict_state(self) -> str:
        if self.new_failures:
            return "fail"
        return "warn" if (self.still_failing or self.flaky or self.shifts) else "pass"


def analyse(history: LoadedHistory) -> ReportModel:
    rounds = _rounds(history)
    new_failures, fixes = _changes(rounds)
    latest = rounds[-1]
    still = [
        r for r in latest.results.values()
        if r.bad and r.key not in {c.record.key for c in new_failures}
    ]
    rows, cols, matrix = _matrix(rounds)
    trends = _trends(rounds)
    return ReportModel(
        rounds=rounds, new_failures=new_failures, fixes=fixes,
        still_failing=sorted(still, key=_spec_order), flaky=_flakes(rounds),
        matrix_rows=rows, matrix_cols=cols, matrix=matrix, trends=trends,
        damage=list(history.damage), shifts=_shifts(trends, rounds),
        cells=_cell_verdicts(rounds),
    )


def _spec_order(record: TestRecord) -> tuple[object, ...]:
    return (spec_key(row_label(record)), record.key)


def _rounds(history: LoadedHistory) -> list[Round]:
    by_batch: dict[str, Round] = {}
    for run in history.runs:  # oldest first, so a later run's record of a test wins
        current = by_batch.setdefault(run.batch, Round(run.batch, [], {}))
        current.runs.append(run)
        for record in history.results.get(run.run_id, []):
            current.results[record.key] = record
            current.run_of[record.key] = run
    return sorted(by_batch.values(), key=lambda r: r.started)


def _changes(rounds: list[Round]) -> tuple[list[Change], list[Change]]:
    latest = rounds[-1]
    new_failures: list[Change] = []
    fixes: list[Change] = []
    for key, record in sorted(latest.results.items()):
        for earlier in reversed(rounds[:-1]):
            previous = earlier.results.get(key)
            if previous is None:
                continue
            if record.bad and previous.outcome == "passed":
                new_failures.append(Change(record, previous, earlier))
            elif record.outcome == "passed" and previous.bad:
                fixes.append(Change(record, previous, earlier))
            break
    new_failures.sort(key=lambda c: _spec_order(c.record))
    fixes.sort(key=lambda c: _spec_order(c.record))
    return new_failures, fixes


def _flakes(rounds: list[Round]) -> list[Flake]:
    """Tests whose pass/fail state changed at least twice in the window: one change is a
    regression or a fix, two or more is a flake."""
    flakes: list[Flake] = []
    keys = sorted({key for r in rounds for key in r.results})
    for key in keys:
        outcomes = [r.results[key].outcome if key in r.results else None for r in rounds]
        states = [o in BAD_OUTCOMES for o in outcomes if o in ("passed", *BAD_OUTCOMES)]
        flips = sum(1 for a, b in itertools.pairwise(states) if a != b)
        if flips >= 2:
            newest = next(r.results[key] for r in reversed(rounds) if key in r.results)
            flakes.append(Flake(newest, outcomes, flips))
    return sorted(flakes, key=lambda f: (-f.flips, f.record.key))


def row_label(record: TestRecord) -> str:
    """The matrix row: the spec item, or the test file for tests without one."""
    return record.spec_item or record.nodeid.split("::", 1)[0]


def natural_key(text: str) -> tuple[object, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


_FAMILY_ORDER = {Family.CORE: 0, Family.RESILIENCE: 1, None: 2}


def spec_key(label: str) -> tuple[object, ...]:
    """Order of matrix rows and test tables: S1–S13, then R1–R6, then tests without an item."""
    return (_FAMILY_ORDER[family_of(label)], natural_key(label))


def _matrix(
    rounds: list[Round],
) -> tuple[list[str], list[str], dict[tuple[str, str], list[CellStatus]]]:
    matrix: dict[tuple[str, str], list[CellStatus]] = defaultdict(
        lambda: [CellStatus() for _ in rounds]
    )
    for index, current in enumerate(rounds):
        for record in current.results.values():
            matrix[(row_label(record), record.cell or NO_CELL)][index].counts[record.status] += 1
    rows = sorted({row for row, _ in matrix}, key=spec_key)
    cols = sorted({col for _, col in matrix}, key=natural_key)
    return rows, cols, dict(matrix)


def _cell_verdicts(rounds: list[Round]) -> list[CellVerdicts]:
    """Per HIL cell and round, the S1–S13 and R1–R6 verdicts (tests without a cell or a
    spec item have none)."""
    cells: dict[str, CellVerdicts] = {}
    for index, current in enumerate(rounds):
        for record in current.results.values():
            family = family_of(record.spec_item)
            if family is None:
                continue
            cell = record.cell
            if not cell:
                continue
            verdicts = cells.get(cell)
            if verdicts is None:
                verdicts = cells[cell] = CellVerdicts(
                    cell, [FamilyVerdict(Family.CORE) for _ in rounds],
                    [FamilyVerdict(Family.RESILIENCE) for _ in rounds])
            per_round = verdicts.resilience if family is Family.RESILIENCE else verdicts.core
            per_round[index].add(record)
    return [cells[name] for name in sorted(cells, key=natural_key)]


def _trends(rounds: list[Round]) -> list[Trend]:
    values: dict[str, dict[str, dict[int, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for index, current in enumerate(rounds):
        for record in current.results.values():
            for metric, value in record.metrics.items():
                values[metric][record.cell or NO_CELL][index].append(value)
        for run, cell in _run_cells(current):
            values["suite_duration_s"][cell][index].append(run.finished - run.started)
    order = list(KNOWN_METRICS) + sorted(set(values) - set(KNOWN_METRICS))
    trends = []
    for metric in order:
        if metric not in values:
            continue
        title, unit = KNOWN_METRICS.get(metric, (metric.replace("_", " "), _unit_of(metric)))
        series = {
            cell: [(i, statistics.median(v)) for i, v in sorted(per_round.items())]
            for cell, per_round in sorted(values[metric].items(), key=lambda kv: natural_key(kv[0]))
        }
        trends.append(Trend(metric, title, unit, series))
    return trends


def _shifts(trends: list[Trend], rounds: list[Round]) -> list[Shift]:
    last = len(rounds) - 1
    found: list[Shift] = []
    for trend in trends:
        if trend.metric in ("messages_sent", "messages_received"):
            continue  # set by the scenario, not by the firmware
        floor = METRIC_SHIFT_FLOOR.get(trend.metric, SHIFT_FLOOR.get(trend.unit, 0.0))
        for cell, points in trend.series.items():
            if len(points) < 2 or points[-1][0] != last:
                continue
            earlier = [v for _, v in points[-1 - BASELINE_ROUNDS:-1]]
            before, now = statistics.median(earlier), points[-1][1]
            change = abs(now - before)
            if change <= floor or change <= SHIFT_RATIO * max(abs(before), 1e-9):
                continue
            # The new level began at the first of the trailing rounds closer to it.
            start = len(points) - 1
            while start > 0 and abs(points[start - 1][1] - now) < abs(points[start - 1][1]
                                                                      - before):
                start -= 1
            found.append(Shift(trend, cell, before, now, rounds[points[start][0]].label))
    return found


def _run_cells(current: Round) -> list[tuple[RunRecord, str]]:
    """Each HIL run's matrix cell: the cell most of its tests ran in (unit runs have none)."""
    cells: dict[int, Counter[str]] = defaultdict(Counter)
    for key, run in current.run_of.items():
        cell = current.results[key].cell
        if cell:
            cells[run.run_id][cell] += 1
    return [(run, cells[run.run_id].most_common(1)[0][0]) for run in current.runs
            if cells.get(run.run_id)]


def _unit_of(metric: str) -> str:
    for suffix, unit in (("_ms", "ms"), ("_s", "s"), ("_bytes", "bytes"), ("_kb", "KiB")):
        if metric.endswith(suffix):
            return unit
    return ""


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 round``, ``2 rounds``, ``0 fixes``."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _all_passed(ran: int, total: int) -> str:
    if ran == 0:
        return "no test ran"
    that_ran = "" if ran == total else " that ran"
    if ran == 1:
        return f"the 1 test{that_ran} passed"
    return f"all {ran} tests{that_ran} passed"
