"""The results history: one SQLite database in a directory, shared by every run.

Several writers may append at once (parallel CI jobs, nightly matrix cells, pytest-xdist),
so the database runs in WAL mode with a busy timeout, and every write is one short
``BEGIN IMMEDIATE`` transaction. Readers load run by run, so a damaged page costs the
runs stored on it, not the whole history.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HistoryError
from harness.spec_items import NOT_APPLICABLE

DB_NAME = "hil-history.sqlite3"
SCHEMA_VERSION = 1
# How long a writer waits for another writer's lock before giving up (SQLite's own deadline).
BUSY_TIMEOUT_S = 30.0

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed")
BAD_OUTCOMES = frozenset({"failed", "error"})
# What pytest puts before the reason of a skip raised in a test or fixture body.
PYTEST_SKIPPED = "Skipped: "
# What a report shows: the stored outcomes, with "not applicable" skips told apart.
NOT_APPLICABLE_STATUS = "n/a"
STATUSES = ("failed", "error", "passed", "skipped", NOT_APPLICABLE_STATUS, "xfailed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    batch TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL NOT NULL,
    exit_status INTEGER,
    harness_rev TEXT NOT NULL DEFAULT '',
    host TEXT NOT NULL DEFAULT '',
    command TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_by_batch ON runs (batch, started);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id),
    nodeid TEXT NOT NULL,
    outcome TEXT NOT NULL,
    duration REAL NOT NULL,
    spec_item TEXT NOT NULL DEFAULT '',
    backend TEXT NOT NULL DEFAULT '',
    device TEXT NOT NULL DEFAULT '',
    profile TEXT NOT NULL DEFAULT '',
    broker TEXT NOT NULL DEFAULT '',
    transport TEXT NOT NULL DEFAULT '',
    device_rev TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    artifacts TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS results_by_run ON results (run_id);
CREATE TABLE IF NOT EXISTS pruned (run_id INTEGER PRIMARY KEY, at REAL NOT NULL);
"""


class HistoryNotWritable(HistoryError):
    """The history directory cannot be created or written."""


class HistoryCorrupt(HistoryError):
    """The history database is damaged (wholly or in part)."""


class HistoryEmpty(HistoryError):
    """The history holds no runs yet."""


@dataclass
class TestRecord:
    """One test's outcome in one run, with the HIL context it ran in."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    outcome: str
    duration: float = 0.0
    spec_item: str = ""
    backend: str = ""
    device: str = ""
    profile: str = ""
    broker: str = ""
    transport: str = ""
    device_rev: str = ""
    message: str = ""
    artifacts: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def cell(self) -> str:
        """The matrix cell (backend/profile/broker), or "" for a test without HIL context."""
        parts = [self.backend, self.profile, self.broker]
        return "/".join(p or "-" for p in parts) if any(parts) else ""

    @property
    def key(self) -> tuple[str, str]:
        """What makes two records comparable across runs: the same test in the same cell."""
        return (self.nodeid, self.cell)

    @property
    def bad(self) -> bool:
        return self.outcome in BAD_OUTCOMES

    @property
    def status(self) -> str:
        """The outcome as a report shows it: a skip the check could not apply is "n/a"."""
        # Histories recorded before the recorder dropped pytest's "Skipped: " keep it.
        reason = self.message.removeprefix(PYTEST_SKIPPED)
        if self.outcome == "skipped" and reason.startswith(NOT_APPLICABLE):
            return NOT_APPLICABLE_STATUS
        return self.outcome

    @property
    def first_line(self) -> str:
        return self.message.removeprefix(PYTEST_SKIPPED).strip().split("\n", 1)[0]


@dataclass
class RunRecord:
    """One pytest session. Runs sharing a ``batch`` (a nightly's matrix cells) form one round."""

    started: float
    finished: float
    batch: str = ""
    exit_status: int | None = None
    harness_rev: str = ""
    host: str = ""
    command: str = ""
    run_id: int = 0
    pruned_at: float | None = None  # when its artifact folders were deleted (--hil-keep)


@dataclass
class Pruning:
    """What :meth:`History.prune` did, and which artifact files are now unreferenced."""

    stale: set[str] = field(default_factory=set)  # artifacts of runs newly marked pruned
    forgotten: set[str] = field(default_factory=set)  # artifacts of runs no longer recorded
    forgotten_runs: int = 0


@dataclass
class LoadedHistory:
    """What could be read: runs oldest first, their results, and notes on damaged parts."""

    runs: list[RunRecord]
    results: dict[int, list[TestRecord]]
    damage: list[str] = field(default_factory=list)


def database_path(directory: Path) -> Path:
    return Path(directory) / DB_NAME


def ensure_writable(directory: Path) -> Path:
    """Create ``directory`` if needed and prove a file can be written in it."""
    directory = Path(directory)
    hint = "give a writable directory with --hil-history (or HIL_HISTORY)"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise HistoryNotWritable(
            f"history directory {directory} is not writable ({reason})", hint=hint
        ) from exc
    return directory


class History:
    """The results history in ``directory``; open with :meth:`for_writing`/:meth:`for_reading`."""

    def __init__(self, directory: Path, connection: sqlite3.Connection) -> None:
        self.directory = Path(directory)
        self.path = database_path(self.directory)
        self._conn = connection

    # --- opening -----------------------------------------------------------------------
    @classmethod
    def for_writing(cls, directory: Path) -> History:
        """Open (creating if needed) the history for appending runs."""
        ensure_writable(directory)
        history = cls(directory, _connect(database_path(directory)))
        try:
            history._create_schema()
        except BaseException:
            history.close()
            raise
        return history

    @classmethod
    def for_reading(cls, directory: Path) -> History:
        """Open an existing history; a missing one is an empty history."""
        path = database_path(directory)
        if not path.is_file():
            raise HistoryEmpty(
                f"no results history in {directory} (no {DB_NAME})",
                hint="record one first with: pytest --hil-history " + str(directory),
            )
        history = cls(directory, _connect(path))
        try:
            history._check_schema()
        except BaseException:
            history.close()
            raise
        return history

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing -----------------------------------------------------------------------
    def record_run(self, run: RunRecord, results: Sequence[TestRecord]) -> int:
        """Append one run and its results in a single short transaction; returns the run id."""
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (batch, started, finished, exit_status, harness_rev, host,"
                " command) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ("", run.started, run.finished, run.exit_status, run.harness_rev, run.host,
                 run.command),
            )
            run_id = int(cursor.lastrowid or 0)
            # A run without a batch is a round of its own.
            batch = run.batch or f"run-{run_id}"
            conn.execute("UPDATE runs SET batch = ? WHERE id = ?", (batch, run_id))
            conn.executemany(
                "INSERT INTO results (run_id, nodeid, outcome, duration, spec_item, backend,"
                " device, profile, broker, transport, device_rev, message, artifacts, metrics)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_result_row(run_id, r) for r in results],
            )
        run.run_id, run.batch = run_id, batch
        return run_id

    # --- reading -----------------------------------------------------------------------
    def load(self, last_batches: int) -> LoadedHistory:
        """The runs of the newest ``last_batches`` rounds (oldest first) and their results."""
        if last_batches < 1:
            raise HistoryError(f"--last must be at least 1, got {last_batches}")
        try:
            batch_rows = self._conn.execute(
                "SELECT batch, MAX(started) AS newest FROM runs GROUP BY batch"
                " ORDER BY newest DESC LIMIT ?",
                (last_batches,),
            ).fetchall()
            batches = [row[0] for row in batch_rows]
            marks = ",".join("?" * len(batches))
            # A history written before pruning existed has no such table (reading adds none).
            has_pruned = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pruned'"
            ).fetchone()
            pruned = ("pruned.at FROM runs LEFT JOIN pruned ON pruned.run_id = runs.id"
                      if has_pruned else "NULL FROM runs")
            run_rows = self._conn.execute(
                "SELECT id, batch, started, finished, exit_status, harness_rev, host, command,"
                f" {pruned} WHERE batch IN ({marks}) ORDER BY started, id",
                batches,
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc, "its list of runs cannot be read") from exc
        if not run_rows:
            raise HistoryEmpty(
                f"the results history in {self.directory} holds no runs yet",
                hint="record one first with: pytest --hil-history " + str(self.directory),
            )
        runs = [_run_from_row(row) for row in run_rows]
        loaded = LoadedHistory(runs=[], results={})
        for run in runs:
            try:
                loaded.results[run.run_id] = list(self._results_of(run.run_id))
            except (sqlite3.DatabaseError, ValueError) as exc:
                loaded.damage.append(f"run #{run.run_id}: {exc}")
                continue
            loaded.runs.append(run)
        if not loaded.runs:
            raise self._corrupt(None, "none of its runs can be read")
        return loaded

    def run_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def prune(self, keep_artifacts: int, keep_rows: int) -> Pruning:
        """Mark the runs of all but the newest ``keep_artifacts`` rounds as pruned, and
        forget all but the newest ``keep_rows`` rounds. Returns the artifact paths the
        caller should now replace by a "pruned" note (``stale``) or delete (``forgotten``)."""
        if keep_artifacts < 1 or keep_rows < keep_artifacts:
            raise HistoryError(
                f"keep {keep_artifacts} rounds of artifacts and {keep_rows} of history: both "
                "must be at least 1, and history at least as many as artifacts",
                hint="check --hil-keep and --hil-keep-history")
        pruning = Pruning()
        with self._write() as conn:
            ranked = [row[0] for row in conn.execute(
                "SELECT batch FROM runs GROUP BY batch ORDER BY MAX(started) DESC, batch")]
            stale = ranked[keep_artifacts:keep_rows]
            forget = ranked[keep_rows:]
            pruning.stale = self._paths(conn, stale, unpruned_only=True)
            pruning.forgotten = self._paths(conn, forget, unpruned_only=False)
            now = time.time()
            conn.executemany(
                "INSERT OR IGNORE INTO pruned (run_id, at) SELECT id, ? FROM runs WHERE batch = ?",
                [(now, batch) for batch in stale])
            for batch in forget:
                for (run_id,) in conn.execute("SELECT id FROM runs WHERE batch = ?",
                                              (batch,)).fetchall():
                    pruning.forgotten_runs += 1
                    conn.execute("DELETE FROM results WHERE run_id = ?", (run_id,))
                    conn.execute("DELETE FROM pruned WHERE run_id = ?", (run_id,))
                    conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        return pruning

    @staticmethod
    def _paths(conn: sqlite3.Connection, batches: Sequence[str], *,
               unpruned_only: bool) -> set[str]:
        paths: set[str] = set()
        for batch in batches:
            rows = conn.execute(
                "SELECT results.artifacts FROM runs JOIN results ON results.run_id = runs.id"
                " WHERE runs.batch = ? AND results.artifacts != '{}'"
                + (" AND runs.id NOT IN (SELECT run_id FROM pruned)" if unpruned_only else ""),
                (batch,)).fetchall()
            for (artifacts,) in rows:
                paths.update(str(v) for v in _json_dict(artifacts).values())
        return paths

    def _results_of(self, run_id: int) -> Iterator[TestRecord]:
        rows = self._conn.execute(
            "SELECT nodeid, outcome, duration, spec_item, backend, device, profile, broker,"
            " transport, device_rev, message, artifacts, metrics FROM results"
            " WHERE run_id = ? ORDER BY id",
            (run_id,),
        ).fetchall()
        for row in rows:
            yield TestRecord(
                nodeid=row[0], outcome=row[1], duration=float(row[2]), spec_item=row[3],
                backend=row[4], device=row[5], profile=row[6], broker=row[7], transport=row[8],
                device_rev=row[9], message=row[10], artifacts=_json_dict(row[11]),
                metrics={k: float(v) for k, v in _json_dict(row[12]).items()},
            )

    # --- internals ---------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._write_failure(exc) from exc
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException as exc:
            self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise self._write_failure(exc) from exc
            raise

    def _create_schema(self) -> None:
        try:
            # WAL lets readers work while one writer appends; it persists in the file.
            self._conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as exc:
            raise self._write_failure(exc) from exc
        with self._write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        self._check_schema()

    def _check_schema(self) -> None:
        try:
            row = self._conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc, "nothing in it can be read") from exc
        version = int(row[0]) if row else 0
        if version != SCHEMA_VERSION:
            raise HistoryError(
                f"history database {self.path} has schema version {version}, this harness "
                f"reads version {SCHEMA_VERSION}",
                hint="use the harness version that wrote it, or start a new history directory",
            )

    def _corrupt(self, exc: BaseException | None, consequence: str) -> HistoryCorrupt:
        detail = f" ({exc})" if exc else ""
        return HistoryCorrupt(
            f"history database {self.path} is corrupt{detail}; {consequence}",
            hint="move the file aside and start a new history (keep it for sqlite3 .recover)",
        )

    def _write_failure(self, exc: sqlite3.DatabaseError) -> HistoryError:
        """A failed write: locked, read-only or full (OperationalError), else corrupt."""
        if isinstance(exc, sqlite3.OperationalError):
            return self._write_error(exc)
        return self._corrupt(exc, "nothing was recorded")

    def _write_error(self, exc: sqlite3.OperationalError) -> HistoryError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return HistoryError(
                f"history database {self.path} stayed locked by another writer for "
                f"{BUSY_TIMEOUT_S:g} s; nothing was recorded",
                hint="check for a hung process holding it",
            )
        return HistoryNotWritable(
            f"history database {self.path} cannot be written ({text})",
            hint="give a writable directory with --hil-history (or HIL_HISTORY)",
        )


def _connect(path: Path) -> sqlite3.Connection:
    try:
        # Autocommit mode: transactions are the explicit BEGIN IMMEDIATE ones above.
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise HistoryNotWritable(
            f"history database {path} cannot be opened ({exc})",
            hint="give a readable, writable directory with --hil-history (or HIL_HISTORY)",
        ) from exc
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return conn


def _json_dict(text: str) -> dict[str, Any]:
    # Most results carry no metrics or artifacts; skipping the parser for them halves load time.
    return {} if text == "{}" else dict(json.loads(text))


def _result_row(run_id: int, r: TestRecord) -> tuple[object, ...]:
    return (
        run_id, r.nodeid, r.outcome, r.duration, r.spec_item, r.backend, r.device, r.profile,
        r.broker, r.transport, r.device_rev, r.message,
        json.dumps(r.artifacts, sort_keys=True), json.dumps(r.metrics, sort_keys=True),
    )


def _run_from_row(row: Iterable[object]) -> RunRecord:
    run_id, batch, started, finished, exit_status, rev, host, command, pruned_at = tuple(row)
    return RunRecord(
        pruned_at=None if pruned_at is None else float(str(pruned_at)),
        run_id=int(str(run_id)), batch=str(batch), started=float(str(started)),
        finished=float(str(finished)),
        exit_status=None if exit_status is None else int(str(exit_status)),
        harness_rev=str(rev), host=str(host), command=str(command),
    )
