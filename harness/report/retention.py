"""Retention: keep the run folders of the newest N rounds and the history of the newest M.

Every HIL session writes a run folder per scenario (``runs/<session>/NN-<scenario>/``,
about 20 KB each, 150 KB a session). With ``--hil-keep N`` older rounds' folders are pruned:
each file in them is replaced by a one-line note saying when and why, so a link from an
old report or summary says "pruned" instead of 404ing; the history keeps their outcomes.
Rounds older than ``--hil-keep-history M`` (default 10 × N) leave the history and their
folders go entirely.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path

from harness.report.history import History

HISTORY_PER_KEPT = 10  # default history rows kept per kept round of artifacts
# Only folders shaped like the rig's run folders are ever touched: <runs*>/<session>/NN-name.
_RUN_FOLDER = re.compile(r"^\d{2,}-[\w.-]+$")


@dataclass
class RetentionResult:
    pruned_folders: int = 0
    removed_folders: int = 0
    forgotten_runs: int = 0

    def describe(self) -> str:
        parts = []
        if self.pruned_folders:
            parts.append(f"pruned {self.pruned_folders} run folder"
                         f"{'s' if self.pruned_folders != 1 else ''}")
        if self.forgotten_runs:
            parts.append(f"forgot {self.forgotten_runs} old run"
                         f"{'s' if self.forgotten_runs != 1 else ''}")
        return ", ".join(parts)


def default_keep_history(keep: int) -> int:
    return keep * HISTORY_PER_KEPT


def apply_retention(history: History, keep: int, keep_history: int | None = None
                    ) -> RetentionResult:
    """Prune the history and the run folders it points at (see the module doc)."""
    rows = keep_history if keep_history is not None else default_keep_history(keep)
    pruning = history.prune(keep, rows)
    note = (f"pruned on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by --hil-keep "
            f"{keep}: this run's artifacts were deleted to bound disk use; its outcome stays "
            "in the results history.")
    result = RetentionResult(forgotten_runs=pruning.forgotten_runs)
    for folder in _run_folders(pruning.stale - pruning.forgotten):
        if _tombstone(folder, note):
            result.pruned_folders += 1
    for folder in _run_folders(pruning.forgotten):
        shutil.rmtree(folder, ignore_errors=True)
        result.removed_folders += 1
        session = folder.parent
        if session.is_dir() and not any(session.iterdir()):
            session.rmdir()
    return result


def is_run_folder(folder: Path) -> bool:
    return bool(_RUN_FOLDER.match(folder.name)) and folder.parent.parent.name.startswith("runs")


def _run_folders(paths: set[str]) -> list[Path]:
    folders = {Path(p).parent for p in paths}
    return sorted(f for f in folders if is_run_folder(f) and f.is_dir())


def _tombstone(folder: Path, note: str) -> bool:
    """Replace every file in ``folder`` by ``note`` (HTML pages by a page saying it)."""
    changed = False
    for path in folder.iterdir():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            continue
        text = (f"<!doctype html><meta charset=utf-8><title>pruned</title><p>{escape(note)}"
                if path.suffix == ".html" else note + "\n")
        try:
            if path.stat().st_size != len(text.encode()):
                path.write_text(text, encoding="utf-8")
                changed = True
        except OSError:
            continue
    return changed
