"""Small random Wan2.1 transformers saved the way the published checkpoints are (shared by the Wan tests)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file

# The original Wan2.1 repository's names for the diffusers ones (the rules of diffusers' conversion script,
# applied in reverse): each pair is (diffusers fragment, original fragment).
ORIGINAL_NAMES = [
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("attn1.to_out.0", "self_attn.o"),
    ("attn2.to_out.0", "cross_attn.o"),
    ("attn1.to_", "self_attn."),
    ("attn2.to_", "cross_attn."),
    ("attn1.", "self_attn."),
    ("attn2.", "cross_attn."),
    ("ffn.net.0.proj", "ffn.0"),
    ("ffn.net.2", "ffn.2"),
    ("norm2", "norm3"),
]


def random_wan(config: dict, seed: int = 0) -> WanTransformer3DModel:
    """A random Wan2.1 T2V transformer with every parameter perturbed (no zero tables hide a mismatch)."""
    torch.manual_seed(seed)
    model = WanTransformer3DModel(**config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return model.eval()


def save_diffusers(model: WanTransformer3DModel, folder: Path, shard: str = "30KB") -> Path:
    """As published: config.json plus sharded safetensors and their index (a small shard size forces shards)."""
    model.save_pretrained(folder, max_shard_size=shard, safe_serialization=True)
    return folder


def original_key(key: str) -> str:
    if key == "scale_shift_table":
        return "head.modulation"
    if key.startswith("proj_out."):
        return key.replace("proj_out.", "head.head.")
    key = key.replace("scale_shift_table", "modulation")
    for diffusers_name, original_name in ORIGINAL_NAMES:
        if diffusers_name in key:
            return key.replace(diffusers_name, original_name)
    return key


def save_original(model: WanTransformer3DModel, folder: Path) -> Path:
    """The original Wan2.1 repository's layout: a `WanModel` config.json and one safetensors file."""
    folder.mkdir(parents=True, exist_ok=True)
    c = model.config
    config = {
        "_class_name": "WanModel",
        "model_type": "t2v",
        "dim": c.num_attention_heads * c.attention_head_dim,
        "ffn_dim": c.ffn_dim,
        "freq_dim": c.freq_dim,
        "num_heads": c.num_attention_heads,
        "num_layers": c.num_layers,
        "in_dim": c.in_channels,
        "out_dim": c.out_channels,
        "text_len": 512,
        "text_dim": c.text_dim,
        "eps": c.eps,
    }
    (folder / "config.json").write_text(json.dumps(config))
    state = {original_key(k): v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))
    return folder
