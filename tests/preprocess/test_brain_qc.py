"""Brain-mask QC: the failures a user must see (a mask with scalp, a registration gone astray) become flags."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.preprocess.raw import _check_brain, preprocess_raw
from mslesion.space.templates import mni_arrays


def _mni_brain_on_2mm_grid():
    """The MNI brain mask on a 2 mm grid of the same space (MNI -> 'FLAIR' is the identity)."""
    _, brain, affine = mni_arrays()
    grid = affine.copy()
    grid[:3, :3] *= 2
    return brain[::2, ::2, ::2] > 0.5, grid


def test_a_plausible_brain_inside_the_registered_template_raises_no_flag():
    brain, affine = _mni_brain_on_2mm_grid()
    qc, warnings = {}, []
    _check_brain(brain, affine, np.eye(4), qc, warnings)
    assert qc["flags"] == [] and warnings == []
    assert 900 < qc["brain_volume_ml"] < 1900 and qc["brain_outside_mni_brain"] < 0.01


def test_a_mask_that_took_in_the_scalp_is_flagged_twice():
    from scipy import ndimage as ndi

    brain, affine = _mni_brain_on_2mm_grid()
    with_scalp = ndi.binary_dilation(brain, iterations=8)  # 16 mm of scalp and skull around it
    qc, warnings = {}, []
    _check_brain(with_scalp, affine, np.eye(4), qc, warnings)
    assert set(qc["flags"]) == {"brain_volume", "brain_outside_mni"}
    assert len(warnings) == 2 and "outside the registered MNI brain" in warnings[1]


@pytest.mark.shared_data
def test_the_old_failure_on_the_isbi_scan_is_flagged(shared_data):
    """The template method on the raw ISBI FLAIR (another scanner, 4.4 mm slices) took in the scalp."""
    pre = preprocess_raw({"FLAIR": shared_data / "isbi-raw" / "training01" / "FLAIR.nii.gz"}, brain_extraction="template")
    assert pre.qc["flags"], pre.qc
    assert {"brain_volume", "mni_registration_not_converged"} & set(pre.qc["flags"])
    assert pre.warnings
