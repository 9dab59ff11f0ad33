"""Evaluators load pretrained weights from folders; random ones are reported; bad specs fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from components.evaluate import preprocess
from components.evaluate.arcface import TINY_CONFIG, IResNet, load_arcface
from components.evaluate.dynamics import make_flow
from components.evaluate.evaluators import DinoEmbedder, EvaluatorConfig, EvaluatorSuite
from components.evaluate.faces import make_face_detector


def test_dino_from_folder_is_not_random_and_keeps_weights(tmp_path: Path, dog_frames):
    random = DinoEmbedder(None, "cpu", seed=3)
    random.model.save_pretrained(tmp_path / "dino")
    suite = EvaluatorSuite(EvaluatorConfig(dino=str(tmp_path / "dino")))
    assert "dino" not in suite.random_weights() and "clip" in suite.random_weights()
    pixels = preprocess.dino_reference(dog_frames[0])[None]
    np.testing.assert_allclose(suite.dino(pixels), random(pixels), atol=1e-5)
    assert suite.dino.model_id.startswith("dino:") and "random" not in suite.dino.model_id
    assert suite.model_ids() == {"dino": suite.dino.model_id}


def test_arcface_weights_are_checked_before_loading(tmp_path: Path):
    torch.save(IResNet(TINY_CONFIG).state_dict(), tmp_path / "backbone.pth")
    with pytest.raises(ValueError, match="do not match r18"):
        load_arcface(tmp_path, "r18")
    with pytest.raises(ValueError, match="r7"):
        load_arcface(tmp_path, "r7")
    faces = IResNet(TINY_CONFIG).eval()(torch.zeros(2, 3, 112, 112))
    assert faces.shape == (2, TINY_CONFIG.num_features)


def test_bad_backend_specs_name_what_was_expected(tmp_path: Path):
    with pytest.raises(ValueError, match="farneback"):
        make_flow("optical")
    with pytest.raises(ValueError, match="haar"):
        make_face_detector("yolo")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        make_face_detector(f"yunet:{tmp_path / 'missing.onnx'}")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="torchvision"):
            make_flow(f"raft:{tmp_path / 'raft.pth'}")
