"""BIDS datasets: `sub-*/[ses-*/]anat/*_{FLAIR,T1w,T2w,PD}.nii.gz`, masks in derivatives.

Masks are looked for in every `derivatives/*/` pipeline folder, on the same sub/ses path:
lesion masks named `*_label-lesion*_mask.nii.gz` (or `*_desc-lesion*_mask`, `*_lesion.nii.gz`),
brain masks `*_label-brain*_mask.nii.gz` or `*_desc-brain_mask.nii.gz`. Site and field
strength come from `participants.tsv` (`site`, `field_strength`) or the images' JSON
sidecars (`InstitutionName`, `MagneticFieldStrength`, `ManufacturersModelName`).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mslesion.errors import InputError
from mslesion.io.case import Case, CaseMeta
from mslesion.io.volume import Volume, load_volume

# BIDS suffix (with `ce-` entity for contrast-enhanced T1) -> canonical contrast name.
SUFFIX_TO_CONTRAST = {"FLAIR": "FLAIR", "T1w": "T1", "T2w": "T2", "PD": "PD", "PDw": "PD"}
MAX_TESLA = 20.0  # field strengths above are not MRI scanners (a value in gauss or mT?)
_ENTITY = re.compile(r"(?P<key>[a-zA-Z]+)-(?P<value>[a-zA-Z0-9]+)")


def _entities(name: str) -> tuple[dict[str, str], str]:
    """Split a BIDS file name into its key-value entities and its suffix."""
    stem = name.split(".")[0]
    parts = stem.split("_")
    ents = {m["key"]: m["value"] for p in parts[:-1] if (m := _ENTITY.fullmatch(p))}
    return ents, parts[-1]


def _contrast(name: str) -> str | None:
    ents, suffix = _entities(name)
    contrast = SUFFIX_TO_CONTRAST.get(suffix)
    if contrast == "T1" and "ce" in ents:
        return "T1POST"
    return contrast


def _participants(root: Path) -> dict[str, dict[str, str]]:
    table = root / "participants.tsv"
    if not table.is_file():
        return {}
    try:
        with table.open(newline="", encoding="utf-8") as fh:
            return {row["participant_id"]: row for row in csv.DictReader(fh, delimiter="\t") if row.get("participant_id")}
    except (OSError, ValueError, csv.Error) as exc:  # ValueError: not UTF-8
        raise InputError(table, f"unreadable participants table ({type(exc).__name__})") from None


def _sidecar_path(image: Path) -> Path:
    """The JSON sidecar beside an image: `sub-01_FLAIR.nii.gz` -> `sub-01_FLAIR.json`."""
    return image.with_name(image.name.split(".")[0] + ".json")


def _sidecar(image: Path) -> dict[str, Any]:
    """The image's JSON sidecar as a dict ({} when there is none), or InputError naming it."""
    sidecar = _sidecar_path(image)
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # ValueError: JSON syntax, not UTF-8, integers over 4300 digits
        raise InputError(sidecar, "unreadable JSON sidecar") from None
    if not isinstance(data, dict):
        raise InputError(sidecar, f"JSON sidecar is not an object (a {type(data).__name__})")
    return data


def _text(value: Any, key: str, source: Path | None) -> str | None:
    """A metadata field as text: strings and numbers are kept (as text), empty and 'n/a' are None, anything else refused."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if value is None or (isinstance(value, str) and value.strip() in ("", "n/a")):
        return None
    if not isinstance(value, str):
        raise InputError(source, f"{key} must be text, not a {type(value).__name__}")
    return value


def _field_strength(value: Any, key: str, source: Path | None) -> float | None:
    """A field strength in tesla (a number, or a number as text), None when absent or 'n/a'; anything else refused."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "n/a")):
        return None
    tesla = None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            tesla = float(value)
        except (ValueError, OverflowError):
            tesla = None
    if tesla is None or not 0 < tesla <= MAX_TESLA:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise InputError(source, f"{key} {shown} is not a field strength in tesla (a number in (0, {MAX_TESLA:g}])")
    return tesla


def _find_mask(root: Path, rel_dir: Path, kind: str) -> Volume | None:
    """The first derivatives mask of `kind` ('lesion' or 'brain') on this sub/ses path."""
    patterns = [f"*_label-{kind}*_mask.nii*", f"*_desc-{kind}*_mask.nii*", f"*_{kind}.nii*"]
    for pipeline in sorted((root / "derivatives").glob("*")):
        folder = pipeline / rel_dir
        for pattern in patterns:
            hits = sorted(folder.glob(pattern))
            if hits:
                return load_volume(hits[0])
    return None


def _session_dirs(root: Path) -> list[Path]:
    """Every `anat` folder of the raw dataset, with or without a session level."""
    subjects = sorted(p for p in root.glob("sub-*") if p.is_dir())
    anat = []
    for sub in subjects:
        sessions = sorted(p for p in sub.glob("ses-*") if p.is_dir())
        anat += [s / "anat" for s in sessions] if sessions else [sub / "anat"]
    return [a for a in anat if a.is_dir()]


def _meta(sub: str, ses: str | None, row: dict[str, str], sidecar: dict[str, Any], table: Path, sidecar_path: Path | None) -> CaseMeta:
    """The session's metadata: participants.tsv (`table`) first, then its image's sidecar."""

    def pick(column: str, key: str, parse: Callable[[Any, str, Path | None], Any]) -> Any:
        if row.get(column) not in (None, "", "n/a"):
            return parse(row[column], f"{column} of {sub}", table)
        return parse(sidecar.get(key), key, sidecar_path)

    return CaseMeta(
        subject=sub,
        session=ses,
        site=pick("site", "InstitutionName", _text),
        scanner=pick("scanner", "ManufacturersModelName", _text),
        field_strength=pick("field_strength", "MagneticFieldStrength", _field_strength),
    )


@dataclass(frozen=True)
class BidsSession:
    """One subject/session's anatomical image files, found by name only (nothing opened yet)."""

    subject: str
    session: str | None
    images: dict[str, Path]  # canonical contrast -> file

    @property
    def name(self) -> str:
        return f"{self.subject}_{self.session}" if self.session else self.subject

    @property
    def rel_dir(self) -> Path:
        return Path(self.subject, self.session, "anat") if self.session else Path(self.subject, "anat")


def list_sessions(root: str | Path) -> list[BidsSession]:
    """Every subject/session holding anatomical images, without opening them.

    A cohort run lists sessions this way so one unreadable file fails its own session,
    not the listing; only a missing folder or a dataset without images is an error here.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "BIDS folder not found")
    sessions = []
    for anat in _session_dirs(root):
        rel = anat.relative_to(root)
        images: dict[str, Path] = {}
        for path in sorted(anat.glob("*.nii*")):
            contrast = _contrast(path.name)
            if contrast is not None and contrast not in images:
                images[contrast] = path
        if images:
            sessions.append(BidsSession(rel.parts[0], rel.parts[1] if len(rel.parts) > 2 else None, images))
    if not sessions:
        raise InputError(root, "no sub-*/[ses-*/]anat/*_{FLAIR,T1w,T2w,PD}.nii[.gz] images found")
    return sessions


def session_meta(root: str | Path, session: BidsSession, participants: dict[str, dict[str, str]] | None = None) -> CaseMeta:
    """Site, scanner and field strength of a session (participants.tsv, else its images' first JSON sidecar)."""
    participants = _participants(Path(root)) if participants is None else participants
    sidecar: dict[str, Any] = {}
    sidecar_path = None
    for path in session.images.values():
        if not sidecar:
            sidecar, sidecar_path = _sidecar(path), _sidecar_path(path)
    row = participants.get(session.subject, {})
    return _meta(session.subject, session.session, row, sidecar, Path(root) / "participants.tsv", sidecar_path)


def read_participants(root: str | Path) -> dict[str, dict[str, str]]:
    """participants.tsv rows by participant_id (empty when the dataset has none)."""
    return _participants(Path(root))


def read_bids(root: str | Path) -> list[Case]:
    """One case per subject/session holding anatomical images (masks from derivatives)."""
    root = Path(root)
    participants = _participants(root) if root.is_dir() else {}
    cases = []
    for found in list_sessions(root):
        rel = found.rel_dir
        images = {contrast: load_volume(path) for contrast, path in found.images.items()}
        cases.append(
            Case(
                case_id=found.name,
                images=images,
                lesion=_find_mask(root, rel, "lesion"),
                brain=_find_mask(root, rel, "brain"),
                meta=session_meta(root, found, participants),
            )
        )
    return cases
