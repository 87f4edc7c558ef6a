"""Write the lesion-location atlas next to this script (run after a nilearn template change).

    python src/mslesion/data/atlas/make_atlas.py

Derivation: see `mslesion.postprocess.locations` and docs/locations.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mslesion.postprocess.locations import ATLAS_FILE, build_atlas_arrays


def main() -> None:
    """Derive the atlas from nilearn's MNI152 templates and save it compressed."""
    out = Path(__file__).with_name(ATLAS_FILE)
    np.savez_compressed(out, **build_atlas_arrays())  # type: ignore[arg-type]  # mypy fears an array named allow_pickle; none is
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
