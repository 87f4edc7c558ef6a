"""Synthetic MS phantoms: real data is scarce, so the toolkit makes its own, realistic enough to train and test on.

Anatomy comes from the MNI152 2009a templates nilearn ships (no download), on the FSL
MNI152 grid of the project's real data; lesions sit where MS puts them (or are copied
from real masks); scanner sites differ in contrast, bias, noise, blur and slice
thickness; longitudinal pairs add new, enlarging and shrinking lesions.

    from mslesion.synth import make_subject, make_sites
    phantom = make_subject(0, make_sites(2, seed=0)[1], resolution_mm=2)
    phantom.images["FLAIR"], phantom.lesion, phantom.brain, phantom.affine
"""

from mslesion.synth.anatomy import LesionKind, load_anatomy
from mslesion.synth.dataset import Layout, make_dataset
from mslesion.synth.lesions import LesionModel
from mslesion.synth.library import LesionLibrary, load_lesion_library
from mslesion.synth.phantom import (
    LongitudinalPair,
    Phantom,
    make_longitudinal_pair,
    make_subject,
    new_lesion_mask,
    subject_seed,
)
from mslesion.synth.sites import CONTRASTS, ContrastModel, SiteProfile, default_site, degrade_site, make_sites

__all__ = [
    "CONTRASTS",
    "ContrastModel",
    "Layout",
    "LesionKind",
    "LesionLibrary",
    "LesionModel",
    "LongitudinalPair",
    "Phantom",
    "SiteProfile",
    "default_site",
    "degrade_site",
    "load_anatomy",
    "load_lesion_library",
    "make_dataset",
    "make_longitudinal_pair",
    "make_sites",
    "make_subject",
    "new_lesion_mask",
    "subject_seed",
]
