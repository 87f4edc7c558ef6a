"""Timing at the real resolution (slow: run with -m slow). benchmarks/synth_speed.py records the numbers."""

from __future__ import annotations

import time

import pytest

from mslesion.synth import load_anatomy, make_subject

pytestmark = pytest.mark.slow


def test_one_mm_subject_under_ten_seconds(sites):
    load_anatomy(1.0)  # the template cache is built once per process, not per subject
    t0 = time.perf_counter()
    phantom = make_subject(0, sites[0], resolution_mm=1.0)
    elapsed = time.perf_counter() - t0
    assert phantom.shape == (182, 218, 182)
    assert elapsed < 10.0, f"{elapsed:.1f} s"
