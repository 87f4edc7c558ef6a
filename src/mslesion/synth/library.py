"""Real lesion shapes: connected components of expert lesion masks on the FSL MNI152 1 mm grid.

A folder of masks (e.g. ../shared/data/lesjak-mni-masks) becomes a library of components,
each kept as a small boolean box with its position, so phantoms can paste real shapes
where real patients had them.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mslesion.errors import InputError
from mslesion.space.grid import FSL_MNI_SHAPE, on_mni_grid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RealComponent:
    """One connected lesion of a real mask: a boolean box and the 1 mm grid index of its first voxel."""

    donor: str
    label: int
    start: tuple[int, int, int]
    mask: np.ndarray

    @property
    def volume_mm3(self) -> int:
        """Voxel count (= mm^3 on the 1 mm grid)."""
        return int(self.mask.sum())


@dataclass(frozen=True)
class LesionLibrary:
    """Components of every mask in a folder, grouped by donor (one donor = one mask file)."""

    folder: Path
    donors: tuple[str, ...]
    components: tuple[tuple[RealComponent, ...], ...]

    @property
    def n_components(self) -> int:
        """Total number of components over all donors."""
        return sum(len(c) for c in self.components)

    def sample(self, rng: np.random.Generator) -> RealComponent:
        """A random component of a random donor that has lesions."""
        donors = [i for i, comps in enumerate(self.components) if comps]
        comps = self.components[donors[int(rng.integers(len(donors)))]]
        return comps[int(rng.integers(len(comps)))]


def mask_files(folder: Path) -> list[Path]:
    """NIfTI files of a folder, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith((".nii", ".nii.gz")))


def _donor_name(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def _components(mask: np.ndarray, donor: str) -> tuple[RealComponent, ...]:
    """Connected components (26-connectivity) of a binary mask as boxes."""
    from scipy import ndimage as ndi

    labels, _ = ndi.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    out = []
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        box = labels[sl] == k
        box.setflags(write=False)
        out.append(RealComponent(donor=donor, label=k, start=tuple(s.start for s in sl), mask=box))
    return tuple(out)


@functools.lru_cache(maxsize=2)
def _load_library(folder_str: str) -> LesionLibrary:
    from mslesion.io.volume import load_volume

    folder = Path(folder_str)
    files = mask_files(folder)
    if not files:
        raise InputError(folder, "holds no lesion masks (.nii or .nii.gz files)")
    donors, components = [], []
    for path in files:
        vol = load_volume(path)
        if not on_mni_grid(vol.shape, vol.affine):
            raise InputError(
                path,
                f"grid {vol.shape} is not the FSL MNI152 1 mm grid {FSL_MNI_SHAPE}; real lesion masks must be registered to it",
            )
        donors.append(_donor_name(path))
        components.append(_components(vol.array > 0.5, donors[-1]))
    library = LesionLibrary(folder=folder, donors=tuple(donors), components=tuple(components))
    if library.n_components == 0:
        raise InputError(folder, "its lesion masks are all empty")
    log.info("lesion library %s: %d masks, %d components", folder, len(donors), library.n_components)
    return library


def load_lesion_library(folder: str | Path) -> LesionLibrary:
    """Read every mask of `folder` into a component library (cached per folder), or raise InputError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "lesion-mask folder not found")
    return _load_library(str(folder.resolve()))
