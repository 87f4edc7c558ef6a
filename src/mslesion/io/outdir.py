"""Output folders are ours or refused, and a run's files appear all together or not at all.

A command writes into a new or empty folder, or into one holding a previous mslesion run
(recognised by its record: `summary.json` or `qc.json` carrying `mslesion_version`),
which is then replaced whole: no file of the older run stays beside the new ones. Any
other folder is refused, so a typo in `--out` never mixes our files with someone else's.
Files are written into a hidden `.staging-*` folder inside the output and moved into place
only when all are written; a killed run's staging folder is removed at the next start.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mslesion.errors import InputError

logger = logging.getLogger(__name__)

RUN_RECORDS = ("summary.json", "qc.json")  # what a finished run writes; moved into place last
STAGING_PREFIX = ".staging-"
STAGING_NAME = re.compile(r"\.staging-[0-9a-f]{8}")  # exactly what `staged_output` names them
PROBE_PREFIX = ".write-test-"


def is_mslesion_run(folder: Path) -> bool:
    """True when `folder` holds the record of a finished mslesion run."""
    for name in RUN_RECORDS:
        try:
            record = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and "mslesion_version" in record:
            return True
    return False


def _remove(path: Path) -> None:
    """Delete a file, a link or a folder tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def prepare_out(out: Path, inputs: Iterable[Path | None] = ()) -> None:
    """Create or claim the output folder now, so a wrong or unwritable one fails before any work.

    Refuses a folder holding anything but a previous mslesion run or what a killed run
    left (its staging folder, removed here, with the files it had half published), and one
    holding any of `inputs` (images, masks, the model), which replacing the run would delete.
    """
    root = out.resolve()
    for path in (Path(p) for p in inputs if p is not None):
        if root == path.resolve() or root in path.resolve().parents:
            raise InputError(path, f"lies inside the output folder {out}, which each run replaces whole; choose another --out")
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file; the output must be a folder (new, empty, or a previous mslesion output)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        entries = [p for p in out.iterdir() if not p.name.startswith(PROBE_PREFIX)]
    except OSError as exc:
        raise InputError(out, f"cannot write the output folder ({exc.strerror or exc.__class__.__name__})") from None
    leftovers = [p for p in entries if STAGING_NAME.fullmatch(p.name) and p.is_dir()]
    others = [p for p in entries if p not in leftovers]
    recorded = is_mslesion_run(out)
    # Killed while publishing into a new folder: the record, moved last, is still in staging.
    half_published = not recorded and any(is_mslesion_run(p) for p in leftovers)
    if others and not recorded and not half_published:
        raise InputError(
            out, "output folder is not empty and holds no previous mslesion run (no summary.json); choose a new or empty folder"
        )
    for path in leftovers + (others if half_published else []):  # what a killed run left
        try:
            _remove(path)
        except OSError as exc:
            raise InputError(path, f"cannot remove what an interrupted run left ({exc.strerror or type(exc).__name__})") from None
    if leftovers:
        logger.info("removed what an interrupted run left in %s", out)
    try:
        probe = out / f"{PROBE_PREFIX}{uuid.uuid4().hex[:8]}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise InputError(out, f"cannot write the output folder ({exc.strerror or exc.__class__.__name__})") from None


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """A hidden staging folder inside `out` to write into; its files replace the run in `out`
    only when the block finishes without an error, and the folder is gone either way."""
    staging = out / f"{STAGING_PREFIX}{uuid.uuid4().hex[:8]}"
    try:
        yield staging
        try:
            publish_staged(staging, out)
        except OSError as exc:
            raise InputError(out, f"cannot replace the previous run's files ({exc.strerror or type(exc).__name__})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_staged(staging: Path, out: Path) -> None:
    """Replace the run in `out` by the staged files: stale ones go, each move is an atomic rename.

    The record (summary.json / qc.json) moves last, so at every moment `out` holds a record,
    its own or the staging folder's, and a run killed halfway is still recognised as ours.
    """
    staged = {item.name for item in staging.iterdir()}
    for item in out.iterdir():
        if item.name not in staged and item.name not in RUN_RECORDS and not item.name.startswith(STAGING_PREFIX):
            _remove(item)  # a file of an older run that this one does not write
    records = [name for name in RUN_RECORDS if name in staged]
    for name in sorted(staged - set(records)) + records:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)  # a folder cannot be renamed over a non-empty one
        os.replace(staging / name, target)
    for name in RUN_RECORDS:
        if name not in staged:
            (out / name).unlink(missing_ok=True)  # an older run's record of another kind
    staging.rmdir()
