"""Session fixtures: the tiny diffusion checkpoints with their ONNX export done once.

The ONNX export (torch.export, then the ONNX program) takes about ten seconds per
checkpoint on a 2-core CPU and is the slow part of every backend test. Tests that only
need an exported checkpoint take a fresh copy of one exported for the whole session
(``ckpt_copy``); a copy is theirs to change. Tests of the export itself make their own.
"""
import shutil
from pathlib import Path

import pytest

from model_helpers import diffusion_checkpoint


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """exported(denoiser, prediction) -> a checkpoint directory whose export is done.
    Shared by the whole session: read it, never change it (use ``ckpt_copy``)."""
    from dp_ros.runtime.export import export_onnx

    made = {}

    def get(denoiser="unet", prediction="epsilon"):
        if (denoiser, prediction) not in made:
            ckpt = diffusion_checkpoint(tmp_path_factory.mktemp("exported"), denoiser, prediction)
            export_onnx(ckpt)
            made[denoiser, prediction] = ckpt
        return made[denoiser, prediction]
    return get


@pytest.fixture
def ckpt_copy(exported, tmp_path):
    """ckpt_copy(denoiser, prediction) -> this test's own copy of an exported checkpoint
    (weights and ONNX files; no engines)."""
    def get(denoiser="unet", prediction="epsilon"):
        return Path(shutil.copytree(exported(denoiser, prediction), tmp_path / f"{denoiser}-{prediction}"))
    return get
