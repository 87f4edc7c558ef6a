"""Where a cohort's per-session files go, and how they get there: staged, renamed, sidecar last.

A worker writes a session's files into a hidden scratch folder of the output, then renames
each under its BIDS-derivatives name and writes the JSON sidecar last: the sidecar is what
makes a session "done", so a session killed halfway is redone by the next run and a done
one is never redone. `Attempts` counts, per task, the workers that started it, on the
output's filesystem, so a session that kills every worker it lands on fails after a few
tries instead of forever.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from mslesion.io.atomic import write_json_atomic, write_text_atomic

WORK_PREFIX = ".work-"
ATTEMPTS_DIR = ".attempts"


def here() -> str:
    """host:pid of this process, recorded with each attempt and outcome."""
    return f"{socket.gethostname()}:{os.getpid()}"


def read_done(sidecar: Path) -> dict[str, Any] | None:
    """The sidecar of a finished session, or None (missing or unreadable: the session is not done)."""
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def publish(scratch: Path, anat: Path, prefix: str, names: dict[str, str], sidecar_name: str, sidecar: dict[str, Any]) -> None:
    """Move a finished run's files from `scratch` into `anat` under their BIDS names; sidecar last.

    Each move is an atomic rename (same filesystem). A file of an earlier, unfinished attempt
    that this one does not write is removed, so a session never mixes two attempts' files.
    """
    anat.mkdir(parents=True, exist_ok=True)
    record = anat / f"{prefix}_{sidecar_name}"
    record.unlink(missing_ok=True)  # not done again until every file is in place
    for name, bids_name in names.items():
        target = anat / f"{prefix}_{bids_name}"
        if (scratch / name).exists():
            os.replace(scratch / name, target)
        else:
            target.unlink(missing_ok=True)
    write_json_atomic(record, sidecar)


def clear_leftovers(out: Path) -> None:
    """Remove what a killed run left: scratch folders and attempt records."""
    for leftover in [*out.glob(f"{WORK_PREFIX}*"), out / ATTEMPTS_DIR]:
        shutil.rmtree(leftover, ignore_errors=True)


class Attempts:
    """How many workers started each task, in `out/.attempts/KEY` ("count host:pid" of the last one)."""

    def __init__(self, out: Path) -> None:
        self.folder = out / ATTEMPTS_DIR

    def start(self, key: str) -> int:
        """Record one more start of `key`; return which attempt this is (1 = the first)."""
        path = self.folder / key
        try:
            count = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            count = 0
        write_text_atomic(path, f"{count + 1} {here()}\n")
        return count + 1

    def finish(self, key: str) -> None:
        """The task ended in this process (done or failed): its record goes."""
        (self.folder / key).unlink(missing_ok=True)

    def running(self) -> dict[str, tuple[int, str]]:
        """Tasks started and not finished: key -> (attempt, host:pid)."""
        found = {}
        for path in self.folder.glob("*"):
            if path.name.startswith("."):  # a record being written
                continue
            try:
                count, where = path.read_text().split()[:2]
                found[path.name] = (int(count), where)
            except (OSError, ValueError):
                continue
        return found
