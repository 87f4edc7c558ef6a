"""Fixtures of the bad-input corpus: a tiny model, a tiny ready scan, and the check every case makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from mslesion.cli import app

TINY_PARAMS = {"features": [4, 4, 8, 8, 16, 4]}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight FLAIR-only U-Net with 32^3 patches (never used to segment a full brain)."""
    import torch

    from mslesion.models.registry import build_network
    from mslesion.models.store import ModelCard, save_model

    torch.manual_seed(0)
    net = build_network("unet", 1, TINY_PARAMS)
    card = ModelCard(architecture="unet", contrasts=["FLAIR"], params=TINY_PARAMS, patch_size=(32, 32, 32))
    return save_model(net.state_dict(), card, tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def ready_scan(tmp_path: Path, nifti_writer) -> Path:
    """A skull-stripped 24^3 FLAIR on 1 mm voxels: what `segment` takes as it is."""
    grid = np.indices((24, 24, 24)).transpose(1, 2, 3, 0)
    brain = np.linalg.norm(grid - 11.5, axis=-1) < 10
    flair = (np.random.default_rng(0).normal(100, 5, brain.shape) * brain).astype(np.float32)
    return nifti_writer(tmp_path / "in" / "flair.nii.gz", flair)


@pytest.fixture
def refused():
    """Run the CLI and check the bad-input contract: exit 2, one `error:` line naming `names`, no traceback."""

    def check(args: list[str], *names: object, message: str = "") -> Result:
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.output
        assert "Traceback" not in result.output
        for name in names:
            assert str(name) in errors[0], errors[0]
        assert message in errors[0], errors[0]
        return result

    return check
