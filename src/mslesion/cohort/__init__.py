"""Cohorts: every session (`segment_dataset`) or every consecutive session pair (`new_lesions_dataset`)
of a BIDS dataset, on this machine's processes or a Ray cluster (`engines`), resumable and fault tolerant."""

from mslesion.cohort.driver import CohortResult
from mslesion.cohort.engines import EngineKind, EngineOptions
from mslesion.cohort.longitudinal import new_lesions_dataset
from mslesion.cohort.segment import segment_dataset

__all__ = ["CohortResult", "EngineKind", "EngineOptions", "new_lesions_dataset", "segment_dataset"]
