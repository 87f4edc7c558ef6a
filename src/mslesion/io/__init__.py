"""Loading and saving: NIfTI volumes, cases, and datasets (manifest, BIDS, nnU-Net)."""

from mslesion.io.case import Case, CaseMeta
from mslesion.io.volume import Volume, load_volume, save_like, save_volume

__all__ = ["Case", "CaseMeta", "Volume", "load_volume", "save_like", "save_volume"]
