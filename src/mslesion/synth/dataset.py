"""Write phantoms to disk: one folder per case, or a BIDS dataset, with a manifest either way.

Folder layout (`DIR/manifest.csv`, `DIR/synth.json`, and per case):
    DIR/synth-0000/{FLAIR,T1,T2,PD,lesion,brain}.nii.gz + phantom.json
Longitudinal folder layout, per pair:
    DIR/synth-0000/{baseline,followup}_{FLAIR,T1}.nii.gz, {baseline,followup}_lesion.nii.gz,
    new_lesion.nii.gz, brain.nii.gz + pair.json
BIDS layout: sub-XXXX/ses-01/anat/sub-XXXX_ses-01_{FLAIR,T1w,T2w,PD}.nii.gz (+ JSON sidecars);
masks under derivatives/mslesion-synth/ (label-lesion, label-brain; label-newlesion on
ses-02 for pairs, whose follow-up is ses-02). The manifest points into the tree.

Subject i is drawn from SeedSequence(seed, spawn_key=(i,)) and scanned by site i mod
n_sites, so growing a dataset never changes the cases already in it. A pair's follow-up
is scanned by the next site (or, with one site, by a degraded version of it); pairs 1,
5, 9, ... have no new lesion, so even small datasets hold the negative case (others draw
their number of new lesions, which is zero in about a third of them).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mslesion.errors import InputError
from mslesion.io.atomic import write_json_atomic, write_text_atomic
from mslesion.io.manifest import write_manifest
from mslesion.io.volume import save_volume
from mslesion.synth.grid import check_resolution
from mslesion.synth.library import load_lesion_library
from mslesion.synth.phantom import LongitudinalPair, Phantom, make_longitudinal_pair, make_subject, subject_seed
from mslesion.synth.sites import CONTRASTS, SiteProfile, make_sites

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
BIDS_SUFFIX = {"FLAIR": "FLAIR", "T1": "T1w", "T2": "T2w", "PD": "PD"}
DERIVATIVE = "mslesion-synth"
BIDS_VERSION = "1.9.0"
PAIR_CONTRASTS = ("FLAIR", "T1")
# Every fourth pair (index 1, 5, 9, ...) has no new lesion, so even small datasets hold the negative case.
STABLE_PAIR_EVERY = 4


class Layout(enum.StrEnum):
    """How a dataset is written."""

    FOLDERS = "folders"
    BIDS = "bids"


def case_id(index: int) -> str:
    """Case identifier of subject `index`: synth-0000, synth-0001, ..."""
    return f"synth-{index:04d}"


def bids_subject(index: int) -> str:
    """BIDS participant label of subject `index`: sub-0000, ..."""
    return f"sub-{index:04d}"


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _save_image(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    return save_volume(array.astype(np.float32, copy=False), affine, path, dtype=np.float32)


def _save_mask(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    return save_volume(array.astype(np.uint8, copy=False), affine, path, dtype=np.uint8)


def _describe(phantom: Phantom) -> dict[str, Any]:
    return {"meta": phantom.meta, "lesions": phantom.lesions}


def _site_columns(site: SiteProfile) -> dict[str, Any]:
    return {"site": site.name, "scanner": site.scanner, "field_strength": site.field_strength}


# ---------------------------------------------------------------- folder layout


def write_subject_folder(phantom: Phantom, root: Path, cid: str) -> dict[str, Any]:
    """Write one cross-sectional case under root/cid; return its manifest row."""
    folder = root / cid
    row: dict[str, Any] = {"case_id": cid, "subject": cid, **_site_columns_from_meta(phantom.meta)}
    for contrast, image in phantom.images.items():
        row[contrast] = _rel(_save_image(image, phantom.affine, folder / f"{contrast}.nii.gz"), root)
    row["lesion"] = _rel(_save_mask(phantom.lesion, phantom.affine, folder / "lesion.nii.gz"), root)
    row["brain"] = _rel(_save_mask(phantom.brain, phantom.affine, folder / "brain.nii.gz"), root)
    write_json_atomic(folder / "phantom.json", _describe(phantom))
    return row


def _site_columns_from_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {"site": meta["site"], "scanner": meta["scanner"], "field_strength": meta["field_strength"]}


def write_pair_folder(pair: LongitudinalPair, root: Path, cid: str) -> dict[str, Any]:
    """Write one longitudinal pair under root/cid; return its manifest row."""
    folder = root / cid
    affine = pair.affine
    row: dict[str, Any] = {"case_id": cid, "subject": cid, "site": pair.baseline.meta["site"]}
    for visit, phantom in (("baseline", pair.baseline), ("followup", pair.followup)):
        for contrast in PAIR_CONTRASTS:
            path = _save_image(phantom.images[contrast], affine, folder / f"{visit}_{contrast}.nii.gz")
            row[f"{visit}_{contrast}"] = _rel(path, root)
    row["lesion"] = _rel(_save_mask(pair.new_lesion, affine, folder / "new_lesion.nii.gz"), root)
    row["brain"] = _rel(_save_mask(pair.brain, affine, folder / "brain.nii.gz"), root)
    row["baseline_lesion"] = _rel(_save_mask(pair.baseline.lesion, affine, folder / "baseline_lesion.nii.gz"), root)
    row["followup_lesion"] = _rel(_save_mask(pair.followup.lesion, affine, folder / "followup_lesion.nii.gz"), root)
    write_json_atomic(
        folder / "pair.json",
        {"pair": pair.meta, "baseline": _describe(pair.baseline), "followup": _describe(pair.followup)},
    )
    return row


# ---------------------------------------------------------------- BIDS layout


def _bids_anat(root: Path, sub: str, ses: str) -> Path:
    return root / sub / ses / "anat"


def _deriv_anat(root: Path, sub: str, ses: str) -> Path:
    return root / "derivatives" / DERIVATIVE / sub / ses / "anat"


def _sidecar(meta: dict[str, Any], contrast: str) -> dict[str, Any]:
    """BIDS JSON sidecar of one image: scanner and acquisition facts."""
    scanner = str(meta["scanner"])
    profile = meta["site_profile"]["contrasts"][contrast]
    return {
        "Manufacturer": scanner.split()[0],
        "ManufacturersModelName": scanner,
        "MagneticFieldStrength": meta["field_strength"],
        "InstitutionName": meta["site"],
        "SliceThickness": profile["slice_thickness_mm"],
        "MRAcquisitionType": "3D" if profile["slice_thickness_mm"] <= 1.0 else "2D",
        "Synthetic": True,
    }


def _write_bids_images(phantom: Phantom, root: Path, sub: str, ses: str, contrasts: tuple[str, ...]) -> dict[str, str]:
    anat = _bids_anat(root, sub, ses)
    out = {}
    for contrast in contrasts:
        stem = f"{sub}_{ses}_{BIDS_SUFFIX[contrast]}"
        out[contrast] = _rel(_save_image(phantom.images[contrast], phantom.affine, anat / f"{stem}.nii.gz"), root)
        write_json_atomic(anat / f"{stem}.json", _sidecar(phantom.meta, contrast))
    return out


def _write_bids_mask(
    mask: np.ndarray,
    affine: np.ndarray,
    root: Path,
    sub: str,
    ses: str,
    label: str,
    sources: list[str],
    extra: dict[str, Any],
) -> str:
    deriv = _deriv_anat(root, sub, ses)
    stem = f"{sub}_{ses}_label-{label}_mask"
    path = _save_mask(mask, affine, deriv / f"{stem}.nii.gz")
    raw = [f"bids:raw:{s}" for s in sources]
    write_json_atomic(deriv / f"{stem}.json", {"Type": "Brain" if label == "brain" else "Lesion", "RawSources": raw, **extra})
    return _rel(path, root)


def write_subject_bids(phantom: Phantom, root: Path, index: int) -> dict[str, Any]:
    """Write one subject into the BIDS tree (session ses-01); return its manifest row."""
    sub, ses = bids_subject(index), "ses-01"
    images = _write_bids_images(phantom, root, sub, ses, tuple(phantom.images))
    sources = list(images.values())
    lesion = _write_bids_mask(phantom.lesion, phantom.affine, root, sub, ses, "lesion", sources, {"Lesions": phantom.lesions})
    brain = _write_bids_mask(phantom.brain, phantom.affine, root, sub, ses, "brain", sources, {})
    return {
        "case_id": case_id(index),
        "subject": sub,
        "session": ses,
        **_site_columns_from_meta(phantom.meta),
        **images,
        "lesion": lesion,
        "brain": brain,
    }


def write_pair_bids(pair: LongitudinalPair, root: Path, index: int) -> dict[str, Any]:
    """Write one pair into the BIDS tree (baseline ses-01, follow-up ses-02); return its manifest row."""
    sub = bids_subject(index)
    base = _write_bids_images(pair.baseline, root, sub, "ses-01", PAIR_CONTRASTS)
    follow = _write_bids_images(pair.followup, root, sub, "ses-02", PAIR_CONTRASTS)
    a = pair.affine
    row: dict[str, Any] = {"case_id": case_id(index), "subject": sub, "site": pair.baseline.meta["site"]}
    row.update({f"baseline_{c}": p for c, p in base.items()})
    row.update({f"followup_{c}": p for c, p in follow.items()})
    row["lesion"] = _write_bids_mask(
        pair.new_lesion,
        a,
        root,
        sub,
        "ses-02",
        "newlesion",
        list(base.values()) + list(follow.values()),
        {"Pair": pair.meta},
    )
    row["brain"] = _write_bids_mask(pair.brain, a, root, sub, "ses-01", "brain", list(base.values()), {})
    row["baseline_lesion"] = _write_bids_mask(
        pair.baseline.lesion, a, root, sub, "ses-01", "lesion", list(base.values()), {"Lesions": pair.baseline.lesions}
    )
    row["followup_lesion"] = _write_bids_mask(
        pair.followup.lesion,
        a,
        root,
        sub,
        "ses-02",
        "lesion",
        list(follow.values()),
        {"Lesions": pair.followup.lesions},
    )
    return row


def _generated_by() -> list[dict[str, str]]:
    from mslesion import __version__

    return [{"Name": "mslesion", "Version": __version__, "Description": "mslesion.synth phantoms from MNI152 2009a"}]


def write_bids_top(root: Path, participants: list[dict[str, Any]]) -> None:
    """dataset_description.json, participants.tsv/json, .bidsignore and the derivative's description."""
    write_json_atomic(
        root / "dataset_description.json",
        {
            "Name": "mslesion synthetic MS phantoms",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "License": "CC0",
            "GeneratedBy": _generated_by(),
        },
    )
    lines = ["participant_id\tsite\tfield_strength"]
    lines += [f"{p['participant_id']}\t{p['site']}\t{p['field_strength']:g}" for p in participants]
    write_text_atomic(root / "participants.tsv", "\n".join(lines) + "\n")
    write_json_atomic(
        root / "participants.json",
        {
            "site": {"Description": "synthetic scanner site"},
            "field_strength": {"Description": "magnetic field strength", "Units": "T"},
        },
    )
    write_text_atomic(root / ".bidsignore", "manifest.csv\nsynth.json\n")
    write_json_atomic(
        root / "derivatives" / DERIVATIVE / "dataset_description.json",
        {
            "Name": "mslesion-synth ground truth",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": _generated_by(),
        },
    )


# ---------------------------------------------------------------- dataset


def _check_args(n: int, seed: int, n_sites: int, layout: str | Layout) -> Layout:
    """Validate the user's choices (InputError names the bad one); return the layout."""
    if int(n) != n or n < 1:
        raise InputError(None, f"number of subjects must be a positive integer, got {n}")
    if int(seed) != seed or seed < 0:
        raise InputError(None, f"seed must be a non-negative integer, got {seed}")
    if int(n_sites) != n_sites or n_sites < 1:
        raise InputError(None, f"number of sites must be a positive integer, got {n_sites}")
    try:
        return Layout(str(layout).lower())
    except ValueError:
        raise InputError(None, f"unknown layout {layout!r}; choose one of {[v.value for v in Layout]}") from None


def _write_case(
    index: int,
    seed: int,
    sites: list[SiteProfile],
    longitudinal: bool,
    layout: Layout,
    root: Path,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Draw case `index` (subject or pair), write it, return its manifest row."""
    site = sites[index % len(sites)]
    rng = np.random.default_rng(subject_seed(seed, index))
    if longitudinal:
        followup_site = sites[(index + 1) % len(sites)] if len(sites) > 1 else None
        n_new = 0 if index % STABLE_PAIR_EVERY == 1 else None
        pair = make_longitudinal_pair(rng, site, followup_site, n_new=n_new, contrasts=PAIR_CONTRASTS, **options)
        if layout == Layout.BIDS:
            return write_pair_bids(pair, root, index)
        return write_pair_folder(pair, root, case_id(index))
    phantom = make_subject(rng, site, contrasts=CONTRASTS, **options)
    if layout == Layout.BIDS:
        return write_subject_bids(phantom, root, index)
    return write_subject_folder(phantom, root, case_id(index))


def make_dataset(
    out_dir: str | Path,
    n: int,
    seed: int,
    n_sites: int = 1,
    longitudinal: bool = False,
    lesion_masks_dir: str | Path | None = None,
    resolution_mm: float = 1.0,
    layout: str | Layout = Layout.FOLDERS,
    deform: bool = True,
    progress: ProgressCallback | None = None,
    dawm: float = 0.0,
) -> Path:
    """Write `n` synthetic subjects (or longitudinal pairs) to `out_dir`; return the manifest path.

    `progress(done, total)` is called after each case. With `lesion_masks_dir`, lesion
    shapes and positions come from real masks on the FSL MNI152 1 mm grid. `dawm` > 0 adds
    unlabelled dirty-appearing white matter (see `phantom.dawm_field`).
    """
    layout = _check_args(n, seed, n_sites, layout)
    if not 0.0 <= dawm <= 2.0:
        raise InputError(None, f"--dawm must be between 0 and 2, got {dawm}")
    r = check_resolution(resolution_mm)
    library = load_lesion_library(lesion_masks_dir) if lesion_masks_dir is not None else None
    root = Path(out_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(root, f"cannot create output folder ({exc.strerror})") from None
    sites = make_sites(n_sites, seed)
    options = {"resolution_mm": r, "deform": deform, "lesion_masks_dir": library, "dawm": dawm}
    rows = []
    for i in range(n):
        t0 = time.perf_counter()
        rows.append(_write_case(i, seed, sites, longitudinal, layout, root, options))
        log.info("%s written in %.1f s (%s)", rows[-1]["case_id"], time.perf_counter() - t0, rows[-1]["site"])
        if progress is not None:
            progress(i + 1, n)
    if layout == Layout.BIDS:
        write_bids_top(root, [{"participant_id": bids_subject(i), **_site_columns(sites[i % n_sites])} for i in range(n)])
    write_json_atomic(
        root / "synth.json",
        {
            "generator": "mslesion.synth",
            "n": n,
            "seed": seed,
            "longitudinal": longitudinal,
            "resolution_mm": r,
            "layout": str(layout),
            "deform": deform,
            "lesion_masks_dir": None if library is None else str(library.folder),
            "sites": [s.to_dict() for s in sites],
        },
    )
    return write_manifest(rows, root / "manifest.csv")
