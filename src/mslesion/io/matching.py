"""Find masks by case id: a single file, a folder of NIfTI files, per-case folders, or a dataset.

Used by `mslesion evaluate` to pair predictions with references. Accepted layouts:
- a NIfTI file (one case; its id is the file name without .nii/.nii.gz);
- a folder of `<id>.nii.gz` files (also `<id>_anything.nii.gz` for predictions);
- a folder of `<id>/<mask name>.nii.gz` per-case folders (what `mslesion segment` writes);
- a dataset folder or manifest that `load_dataset` reads (lesion masks + site labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mslesion.errors import InputError
from mslesion.io.volume import Volume, is_nifti_path, load_volume, strip_nifti_suffix

# File names, in order of preference, of a mask inside a per-case folder.
CASE_FOLDER_MASKS = ("lesion_mask.nii.gz", "new_lesion_mask.nii.gz", "lesion.nii.gz", "new_lesion.nii.gz", "mask.nii.gz")


@dataclass
class MaskEntry:
    """One mask to evaluate, with the case's site when the source knows it."""

    case_id: str
    volume: Volume
    site: str | None = None


def _from_dataset(path: Path) -> dict[str, MaskEntry]:
    from mslesion.io.dataset import load_dataset

    cases = load_dataset(path)
    entries = {c.case_id: MaskEntry(c.case_id, c.lesion, c.meta.site) for c in cases if c.lesion is not None}
    if not entries:
        raise InputError(path, "dataset has no lesion masks")
    return entries


def _case_folder_mask(folder: Path) -> Path | None:
    for name in CASE_FOLDER_MASKS:
        if (folder / name).is_file():
            return folder / name
    return None


def collect_masks(path: str | Path) -> dict[str, MaskEntry]:
    """Masks keyed by case id from any accepted layout (see module docstring)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() in (".csv", ".tsv"):
            return _from_dataset(path)
        case_id = strip_nifti_suffix(path.name)
        return {case_id: MaskEntry(case_id, load_volume(path))}
    if not path.is_dir():
        raise InputError(path, "not found")
    if any((path / marker).exists() for marker in ("manifest.csv", "manifest.tsv", "dataset.json", "dataset_description.json")):
        return _from_dataset(path)
    entries: dict[str, MaskEntry] = {}
    for child in sorted(path.iterdir()):
        if child.is_file() and is_nifti_path(child) and not child.name.startswith("."):
            entries[strip_nifti_suffix(child.name)] = MaskEntry(strip_nifti_suffix(child.name), load_volume(child))
        elif child.is_dir() and (mask := _case_folder_mask(child)) is not None:
            entries[child.name] = MaskEntry(child.name, load_volume(mask))
    if not entries:
        raise InputError(path, "no NIfTI masks or per-case folders found")
    return entries


def pair_by_case_id(preds: dict[str, MaskEntry], refs: dict[str, MaskEntry]) -> list[tuple[MaskEntry, MaskEntry]]:
    """Pair each reference with its prediction: same id, or a prediction named `<id>_*`.

    A single prediction and a single reference are paired whatever their names.
    Raises InputError when a reference has no prediction or several candidates.
    """
    if len(preds) == 1 and len(refs) == 1:
        return [(next(iter(preds.values())), next(iter(refs.values())))]
    pairs = []
    for case_id, ref in refs.items():
        if case_id in preds:
            pairs.append((preds[case_id], ref))
            continue
        candidates = [p for pid, p in preds.items() if pid.startswith(case_id + "_")]
        if len(candidates) != 1:
            problem = "no prediction" if not candidates else f"{len(candidates)} candidate predictions"
            raise InputError(ref.volume.path, f"case {case_id!r}: {problem}")
        pairs.append((candidates[0], ref))
    return pairs
