"""One entry point for datasets: detect the layout (manifest, BIDS, nnU-Net) and read it."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from mslesion.errors import InputError
from mslesion.io.case import Case


class DatasetFormat(StrEnum):
    """The dataset layouts the toolkit reads."""

    AUTO = "auto"
    MANIFEST = "manifest"
    BIDS = "bids"
    NNUNET = "nnunet"
    FOLDERS = "folders"


def detect_format(path: str | Path) -> DatasetFormat:
    """Guess the layout: a .csv/.tsv file or a folder with manifest.csv, BIDS, or nnU-Net."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv"):
        return DatasetFormat.MANIFEST
    if not path.is_dir():
        raise InputError(path, "dataset not found (expected a manifest .csv/.tsv or a dataset folder)")
    if (path / "dataset.json").is_file() and (path / "imagesTr").is_dir():
        return DatasetFormat.NNUNET
    if (path / "manifest.csv").is_file() or (path / "manifest.tsv").is_file():
        return DatasetFormat.MANIFEST
    if (path / "dataset_description.json").is_file() or any(path.glob("sub-*")):
        return DatasetFormat.BIDS
    if any(p.is_dir() and (p / "FLAIR.nii.gz").is_file() for p in path.iterdir()):
        return DatasetFormat.FOLDERS
    raise InputError(
        path, "unknown dataset layout (no manifest.csv, dataset.json+imagesTr, sub-* folders, or case folders with FLAIR.nii.gz)"
    )


def load_dataset(path: str | Path, fmt: DatasetFormat | str = DatasetFormat.AUTO) -> list[Case]:
    """Read every case of a dataset; images are opened lazily."""
    path = Path(path)
    fmt = DatasetFormat(fmt)
    if fmt is DatasetFormat.AUTO:
        fmt = detect_format(path)
    if fmt is DatasetFormat.MANIFEST:
        from mslesion.io.manifest import read_manifest

        if path.is_dir():
            path = path / "manifest.csv" if (path / "manifest.csv").is_file() else path / "manifest.tsv"
        return read_manifest(path)
    if fmt is DatasetFormat.BIDS:
        from mslesion.io.bids import read_bids

        return read_bids(path)
    if fmt is DatasetFormat.FOLDERS:
        return read_case_folders(path)
    from mslesion.io.nnunet import read_nnunet

    return read_nnunet(path)


def read_labelled_case_folder(case_dir: Path) -> Case:
    """One case folder with a FLAIR and a lesion mask, all on one grid (e.g. lesjak-mni/patient19), or InputError."""
    case_dir = Path(case_dir)
    if not case_dir.is_dir():
        raise InputError(case_dir, "case folder not found")
    case = next((c for c in read_case_folders(case_dir.parent) if c.case_id == case_dir.name), None)
    if case is None or case.lesion is None:
        raise InputError(case_dir, "not a case folder with FLAIR.nii.gz and lesion.nii.gz")
    case.check_same_grid()
    return case


def read_case_folders(root: Path) -> list[Case]:
    """One case per sub-folder holding `<CONTRAST>.nii.gz` files, `lesion.nii.gz`, `brain.nii.gz`.

    The layout of `mslesion synth` without its manifest, and of ../shared/data/lesjak-mni.
    """
    from mslesion.io.case import CaseMeta, canonical_contrast
    from mslesion.io.volume import is_nifti_path, load_volume, strip_nifti_suffix

    cases = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = {strip_nifti_suffix(f.name): f for f in sorted(folder.iterdir()) if is_nifti_path(f)}
        if "FLAIR" not in files:
            continue
        masks = {k: load_volume(files.pop(k)) for k in ("lesion", "brain") if k in files}
        images = {canonical_contrast(name): load_volume(f) for name, f in files.items()}
        cases.append(Case(folder.name, images, masks.get("lesion"), masks.get("brain"), CaseMeta(subject=folder.name)))
    if not cases:
        raise InputError(root, "no case folder with FLAIR.nii.gz")
    return cases
