"""How long a synthetic phantom takes: per subject at 1 mm and 2 mm, per longitudinal pair, and written to disk.

Run: .venv/bin/python benchmarks/synth_speed.py [--repeats 3]
Writes benchmarks/results/synth_speed.json. The target is under 10 s per 1 mm subject.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from mslesion.io.atomic import write_json_atomic
from mslesion.synth import load_anatomy, make_dataset, make_longitudinal_pair, make_sites, make_subject

RESULTS = Path(__file__).resolve().parent / "results" / "synth_speed.json"
TARGET_S = 10.0


def _timed(fn) -> float:  # noqa: ANN001 - any zero-argument callable
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _summary(times: list[float]) -> dict[str, float]:
    return {"mean_s": round(statistics.mean(times), 3), "max_s": round(max(times), 3), "runs": len(times)}


def run(repeats: int) -> dict[str, object]:
    """Measure every case; the template cache is warmed first and reported on its own."""
    sites = make_sites(3, seed=0)
    cold = {f"{r:g}mm": round(_timed(lambda r=r: load_anatomy(r)), 3) for r in (1.0, 2.0)}
    result: dict[str, object] = {"anatomy_first_load_s": cold}
    for r in (1.0, 2.0):
        times = [_timed(lambda i=i, r=r: make_subject(i, sites[i % 3], resolution_mm=r)) for i in range(repeats)]
        result[f"subject_{r:g}mm"] = _summary(times)
    pair_times = [_timed(lambda i=i: make_longitudinal_pair(i, sites[0], resolution_mm=1.0)) for i in range(repeats)]
    result["pair_1mm"] = _summary(pair_times)
    with tempfile.TemporaryDirectory() as tmp:
        t = _timed(lambda: make_dataset(tmp, repeats, seed=0, n_sites=3, resolution_mm=1.0))
        result["subject_1mm_written"] = {"mean_s": round(t / repeats, 3), "runs": repeats}
        t = _timed(lambda: make_dataset(Path(tmp) / "long", repeats, seed=0, longitudinal=True, resolution_mm=1.0))
        result["pair_1mm_written"] = {"mean_s": round(t / repeats, 3), "runs": repeats}
    result["target_s_per_1mm_subject"] = TARGET_S
    result["meets_target"] = result["subject_1mm_written"]["mean_s"] < TARGET_S  # type: ignore[index]
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run(args.repeats)
    write_json_atomic(args.out, result)
    logging.getLogger(__name__).warning("wrote %s", args.out)
    for key, value in result.items():
        print(f"{key}: {value}")  # noqa: T201 - a script's report


if __name__ == "__main__":
    main()
