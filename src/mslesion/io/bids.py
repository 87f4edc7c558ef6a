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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mslesion.errors import InputError
from mslesion.io.case import Case, CaseMeta
from mslesion.io.volume import Volume, load_volume

# BIDS suffix (with `ce-` entity for contrast-enhanced T1) -> canonical contrast name.
SUFFIX_TO_CONTRAST = {"FLAIR": "FLAIR", "T1w": "T1", "T2w": "T2", "PD": "PD", "PDw": "PD"}
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
    with table.open(newline="") as fh:
        return {row["participant_id"]: row for row in csv.DictReader(fh, delimiter="\t") if row.get("participant_id")}


def _sidecar(image: Path) -> dict[str, Any]:
    sidecar = image.with_name(image.name.split(".")[0] + ".json")
    if not sidecar.is_file():
        return {}
    try:
        return json.loads(sidecar.read_text())
    except (json.JSONDecodeError, OSError):
        raise InputError(sidecar, "unreadable JSON sidecar") from None


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


def _meta(sub: str, ses: str | None, row: dict[str, str], sidecar: dict[str, Any]) -> CaseMeta:
    field = row.get("field_strength") or sidecar.get("MagneticFieldStrength")
    return CaseMeta(
        subject=sub,
        session=ses,
        site=row.get("site") or sidecar.get("InstitutionName"),
        scanner=row.get("scanner") or sidecar.get("ManufacturersModelName"),
        field_strength=float(field) if field not in (None, "", "n/a") else None,
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
    for path in session.images.values():
        sidecar = sidecar or _sidecar(path)
    return _meta(session.subject, session.session, participants.get(session.subject, {}), sidecar)


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
