"""Reorientation to the closest canonical (RAS) voxel order, recorded so it can be undone exactly.

Reorienting only permutes and flips array axes (no interpolation): the canonical array
holds the very same voxels, and `Reorientation.to_native` gives back the native array
bit for bit. World coordinates do not change, so oblique scans stay oblique in the affine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations as nio


@dataclass(frozen=True)
class Reorientation:
    """The native grid of an image and the axis permutation/flips that make it RAS."""

    native_shape: tuple[int, int, int]
    native_affine: np.ndarray
    ornt: np.ndarray  # nibabel orientation transform, native -> canonical, shape (3, 2)

    @classmethod
    def of(cls, shape: tuple[int, ...], affine: np.ndarray) -> Reorientation:
        """The reorientation that turns a grid of `shape` and RAS `affine` into RAS voxel order."""
        affine = np.asarray(affine, dtype=float)
        ornt = nio.ornt_transform(nio.io_orientation(affine), nio.axcodes2ornt("RAS"))
        return cls(tuple(int(n) for n in shape[:3]), affine, ornt)  # type: ignore[arg-type]  # 3 axes; mypy cannot count a generator's items

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        """Array shape after reorientation."""
        order = self.ornt[:, 0].astype(int)
        shape = [0, 0, 0]
        for src, dst in enumerate(order):
            shape[dst] = self.native_shape[src]
        return tuple(shape)  # type: ignore[return-value]  # 3 axes; mypy types a list's tuple as tuple[int, ...]

    @property
    def canonical_affine(self) -> np.ndarray:
        """RAS affine of the canonical grid (same world positions as the native voxels)."""
        return self.native_affine @ nio.inv_ornt_aff(self.ornt, self.native_shape)

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """Native-order array -> canonical-order array (a view-free exact copy)."""
        return np.ascontiguousarray(nio.apply_orientation(np.asarray(array), self.ornt))

    def to_native(self, array: np.ndarray) -> np.ndarray:
        """Canonical-order array -> native-order array, exactly inverting `to_canonical`."""
        inverse = nio.ornt_transform(nio.axcodes2ornt("RAS"), nio.io_orientation(self.native_affine))
        return np.ascontiguousarray(nio.apply_orientation(np.asarray(array), inverse))

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON record of the step."""
        return {
            "native_shape": list(self.native_shape),
            "native_affine": np.round(self.native_affine, 8).tolist(),
            "native_axcodes": "".join(nib.aff2axcodes(self.native_affine)),
            "ornt_native_to_ras": self.ornt.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reorientation:
        """Rebuild from `to_json` output."""
        return cls(tuple(data["native_shape"]), np.asarray(data["native_affine"], float), np.asarray(data["ornt_native_to_ras"], float))


def reorient_canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, Reorientation]:
    """(canonical array, canonical affine, the recorded step) of an image given in any voxel order."""
    step = Reorientation.of(array.shape, affine)
    return step.to_canonical(array), step.canonical_affine, step
