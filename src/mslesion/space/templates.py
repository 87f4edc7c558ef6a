"""The MNI152 2009a template and brain mask that nilearn ships (packaged: nothing is downloaded).

The images stay on nilearn's own 1 mm grid (197x233x189), as SimpleITK images (the arrays
cached per process); `preprocess.register.registration_target` registers scans to them.
The model's working grid is the FSL MNI152 grid of `mslesion.space.grid`, which is the
same space with another field of view.
"""

from __future__ import annotations

import functools

import numpy as np
import SimpleITK as sitk

from mslesion.space.sitkio import to_sitk


@functools.lru_cache(maxsize=1)
def mni_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T1 template in [0, 1], brain mask probability, affine) of nilearn's MNI152 2009a, 1 mm."""
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=1)
    brain = datasets.load_mni152_brain_mask(resolution=1)
    t1_data = np.asarray(t1.get_fdata(dtype=np.float32), dtype=np.float32)
    brain_data = np.asarray(brain.get_fdata(dtype=np.float32), dtype=np.float32)
    for a in (t1_data, brain_data):
        a.setflags(write=False)
    return t1_data, brain_data, np.asarray(t1.affine, dtype=float)


def mni_template() -> sitk.Image:
    """The skull-stripped MNI152 2009a T1 template as a SimpleITK image (LPS geometry)."""
    t1, _, affine = mni_arrays()
    return to_sitk(t1, affine)


def mni_brain_mask() -> sitk.Image:
    """The MNI152 2009a brain mask (0/1 float) as a SimpleITK image."""
    _, brain, affine = mni_arrays()
    return to_sitk(brain, affine)


def mni_affine() -> np.ndarray:
    """RAS affine of nilearn's 1 mm MNI152 2009a grid."""
    return mni_arrays()[2].copy()
