"""Preprocessing stages, each a small module usable alone; `raw.preprocess_raw` chains them for raw scans.

orient (RAS reorientation, exact) -> bias (N4) -> register (rigid to FLAIR, affine to MNI)
-> skullstrip (template prior refined by intensity) -> resample (working MNI 1 mm grid and back)
-> normalize (z-score, WM peak, Nyul). `export.write_preprocessed` writes a result to a folder.
"""
