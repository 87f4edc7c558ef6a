"""Rigid registration recovers a known motion; brain extraction finds the brain under a synthetic skull."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.preprocess.register import Init, nmi, register
from mslesion.preprocess.resample import resample
from mslesion.preprocess.skullstrip import brain_mask_or_fail, refine_brain_mask
from mslesion.space.sitkio import to_sitk


def _rigid(angles_deg: tuple[float, float, float], shift_mm: tuple[float, float, float]) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    out = np.eye(4)
    out[:3, :3] = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    out[:3, 3] = shift_mm
    return out


def _max_displacement(a: np.ndarray, b: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> float:
    points = affine @ np.c_[np.argwhere(mask), np.ones(int(mask.sum()))].T
    return float(np.linalg.norm((a @ points - b @ points)[:3], axis=0).max())


def test_rigid_registration_recovers_a_known_motion(head) -> None:
    image, brain, affine = head
    truth = _rigid((4.0, -3.0, 6.0), (3.0, -4.0, 2.0))  # fixed point -> moving point
    # The moving scan: the same head seen through `truth`, on a thick-slice grid, inverted contrast (T1-like).
    moving_affine = np.diag([1.5, 1.5, 4.0, 1.0])
    moving_affine[:3, 3] = affine[:3, 3]
    moving_shape = (64, 75, 24)
    moving = resample(200.0 - image, affine, moving_affine, moving_shape, dst_to_src=np.linalg.inv(truth))
    reg = register(to_sitk(image, affine), to_sitk(moving, moving_affine), "rigid", Init.IDENTITY, fixed_spacing_mm=2.0)
    assert _max_displacement(reg.matrix, truth, brain, affine) < 1.5


def test_registration_of_images_that_do_not_overlap_is_an_input_error(head) -> None:
    image, _, affine = head
    far = affine.copy()
    far[:3, 3] += 2000.0
    with pytest.raises(InputError, match="registration of T1 to FLAIR failed"):
        register(to_sitk(image, affine), to_sitk(image, far), "rigid", Init.IDENTITY, name="T1 to FLAIR")


def test_nmi_is_higher_when_aligned(head) -> None:
    image, brain, _ = head
    shifted = np.roll(image, 4, axis=0)
    assert nmi(image, 200.0 - image, brain) > nmi(image, shifted, brain) + 0.05
    assert np.isnan(nmi(image, image, np.zeros_like(brain)))


@pytest.mark.parametrize("error", ["too_big", "shifted"])
def test_brain_extraction_under_a_synthetic_skull(head, dice_fn, error: str) -> None:
    image, brain, affine = head
    spacing = (2.0, 2.0, 2.0)
    # The template prior is off, as after a rough affine registration: too big, or shifted by 4 mm.
    if error == "too_big":
        from scipy import ndimage as ndi

        prior = ndi.binary_dilation(brain, iterations=2)
    else:
        prior = np.roll(brain, 2, axis=1)
    mask = refine_brain_mask(image, prior, spacing)
    assert dice_fn(mask, brain) > 0.93
    assert dice_fn(mask, brain) > dice_fn(prior, brain)


def test_empty_brain_mask_is_a_one_line_error() -> None:
    with pytest.raises(InputError, match="brain extraction found 0 mL"):
        brain_mask_or_fail(np.zeros((5, 5, 5), bool), 1.0, "scan.nii.gz")
    assert not refine_brain_mask(np.ones((5, 5, 5)), np.zeros((5, 5, 5), bool), (1.0, 1.0, 1.0)).any()


def test_registration_that_hits_its_iteration_limit_is_not_converged() -> None:
    from mslesion.preprocess.register import Registration

    hit = Registration(np.eye(4), "rigid", -0.5, 200, "RegularStepGradientDescentOptimizerv4: Maximum number of iterations (200) exceeded.")
    met = Registration(np.eye(4), "rigid", -0.5, 12, "RegularStepGradientDescentOptimizerv4: Step too small after 12 iterations.")
    assert not hit.converged and hit.to_json()["converged"] is False
    assert met.converged
