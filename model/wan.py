"""A pretrained Wan2.1 text-to-video transformer as Video Alchemist's stage 1.

Video Alchemist (arXiv 2501.06187, Sec. 3) adds a personalization cross-attention to every block of a
text-to-video DiT. Our DiT computes Wan2.1's function (adaLN-single tables, 3D RoPE, QK-norm across heads,
fp32 LayerNorms, the text projection, t*1000 timesteps, v = eps - x0), so a published checkpoint maps onto
it key by key. What Wan lacks starts out silent: the self-conditioning input channels are zero, and every
personalization cross-attention has a zero output projection, so the imported model is exactly Wan until
stage 2 trains them.

Two layouts are read: a diffusers `WanTransformer3DModel` folder (config.json + sharded safetensors with an
index, as published), and the original Wan2.1 repository's (`WanModel` config + the same weight files).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from model.alchemist import write_checkpoint
from model.binding import EntityBinder
from model.blocks import fused_projections
from model.config import UNSET, AlchemistConfig, DiTConfig, ImageEncoderConfig, wan21_t2v
from model.dit import VideoDiT
from model.encoders.image import ImageEncoder

WEIGHTS_STEM = "diffusion_pytorch_model"


class WanImportError(ValueError):
    """The folder is not a Wan2.1 text-to-video transformer this importer can map exactly."""


# Per layout: (self-attention, cross-attention, its input norm, FFN in, FFN out, projections q/k/v/out, table)
BLOCK_NAMES = {
    "diffusers": (
        "attn1",
        "attn2",
        "norm2",
        "ffn.net.0.proj",
        "ffn.net.2",
        ("to_q", "to_k", "to_v", "to_out.0"),
        "scale_shift_table",
    ),
    "original": ("self_attn", "cross_attn", "norm3", "ffn.0", "ffn.2", ("q", "k", "v", "o"), "modulation"),
}
TOP_NAMES = {
    "diffusers": {
        "patch_embedding": "patch_embed",
        "condition_embedder.time_embedder.linear_1": "time_embed.0",
        "condition_embedder.time_embedder.linear_2": "time_embed.2",
        "condition_embedder.time_proj": "time_modulation.1",
        "condition_embedder.text_embedder.linear_1": "text_proj.0",
        "condition_embedder.text_embedder.linear_2": "text_proj.2",
        "scale_shift_table": "final_modulation",
        "proj_out": "head",
    },
    "original": {
        "patch_embedding": "patch_embed",
        "time_embedding.0": "time_embed.0",
        "time_embedding.2": "time_embed.2",
        "time_projection.1": "time_modulation.1",
        "text_embedding.0": "text_proj.0",
        "text_embedding.2": "text_proj.2",
        "head.modulation": "final_modulation",
        "head.head": "head",
    },
}


def module_map(depth: int, layout: str) -> dict[str, str]:
    """Wan module (or bare parameter) name -> ours; a module maps its `.weight` and `.bias`. The q/k/v
    projections map to separate names first, which `map_state` concatenates into our fused projections."""
    attn1, attn2, norm, ffn_in, ffn_out, projections, table = BLOCK_NAMES[layout]
    names = dict(TOP_NAMES[layout])
    for i in range(depth):
        theirs, ours = f"blocks.{i}.", f"blocks.{i}."
        for wan_attn, our_attn in ((attn1, "self_attn"), (attn2, "text_attn")):
            for wan_proj, our_proj in zip(projections, ("to_q", "to_k", "to_v", "to_out")):
                names[f"{theirs}{wan_attn}.{wan_proj}"] = f"{ours}{our_attn}.{our_proj}"
            for qk in ("norm_q", "norm_k"):
                names[f"{theirs}{wan_attn}.{qk}"] = f"{ours}{our_attn}.{qk}"
        names[f"{theirs}{norm}"] = f"{ours}norm_text"
        names[f"{theirs}{ffn_in}"] = f"{ours}mlp.fc1"
        names[f"{theirs}{ffn_out}"] = f"{ours}mlp.fc2"
        names[f"{theirs}{table}"] = f"{ours}modulation"
    return names


def read_config(folder: Path) -> tuple[dict[str, Any], str]:
    path = folder / "config.json"
    if not path.is_file():
        raise WanImportError(f"{folder} has no config.json: expected a Wan2.1 transformer folder")
    config = json.loads(path.read_text())
    name = config.get("_class_name")
    if name == "WanTransformer3DModel":
        return config, "diffusers"
    if name == "WanModel" or "dim" in config and "num_heads" in config:
        return config, "original"
    raise WanImportError(f"{path}: _class_name={name!r} is not WanTransformer3DModel or WanModel")


def dit_config(config: dict[str, Any], layout: str) -> tuple[DiTConfig, int, int]:
    """Wan's config -> (our DiTConfig, latent channels, text width); refuses what would not be exact."""
    if layout == "original":
        if config.get("model_type", "t2v") != "t2v":
            raise WanImportError(f"model_type={config['model_type']!r}: only text-to-video (t2v) imports")
        config = {
            "num_attention_heads": config["num_heads"],
            "attention_head_dim": config["dim"] // config["num_heads"],
            "in_channels": config.get("in_dim", 16),
            "out_channels": config.get("out_dim", 16),
            "text_dim": config.get("text_dim", 4096),
            "freq_dim": config.get("freq_dim", 256),
            "ffn_dim": config["ffn_dim"],
            "num_layers": config["num_layers"],
            "eps": config.get("eps", 1e-6),
            "patch_size": config.get("patch_size", (1, 2, 2)),
        }
    for field, allowed in (("image_dim", None), ("added_kv_proj_dim", None), ("pos_embed_seq_len", None)):
        if config.get(field, allowed) is not allowed:
            raise WanImportError(
                f"{field}={config[field]!r}: image-conditioned Wan (I2V/FLF2V) does not import"
            )
    if not config.get("cross_attn_norm", True):
        raise WanImportError(
            "cross_attn_norm=False: our text cross-attention always has an affine input norm"
        )
    qk_norm = config.get("qk_norm", "rms_norm_across_heads")
    if qk_norm not in ("rms_norm_across_heads", None):
        raise WanImportError(f"qk_norm={qk_norm!r}; expected 'rms_norm_across_heads'")
    in_channels, out_channels = (
        config.get("in_channels", 16),
        config.get("out_channels") or config.get("in_channels", 16),
    )
    if in_channels != out_channels:
        raise WanImportError(
            f"in_channels={in_channels} != out_channels={out_channels}: not a text-to-video model"
        )
    heads = config["num_attention_heads"]
    dit = DiTConfig(
        hidden_size=heads * config["attention_head_dim"],
        depth=config["num_layers"],
        num_heads=heads,
        ffn_dim=config["ffn_dim"],
        patch_size=tuple(config.get("patch_size", (1, 2, 2))),
        qk_norm="across_heads" if qk_norm else "none",
        norm_eps=config.get("eps", 1e-6),
        text_dim=config.get("text_dim", 4096),
        time_freq_dim=config.get("freq_dim", 256),
        personalization=True,
        self_conditioning=True,
    )
    return dit, in_channels, dit.text_dim


def weight_files(folder: Path) -> list[Path]:
    index = folder / f"{WEIGHTS_STEM}.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise WanImportError(f"{index} names shards that are missing: {missing}")
        return [folder / s for s in shards]
    single = folder / f"{WEIGHTS_STEM}.safetensors"
    if single.is_file():
        return [single]
    raise WanImportError(f"{folder} has neither {single.name} nor {index.name}")


def wan_tensors(folder: Path) -> Iterator[tuple[str, torch.Tensor]]:
    for path in weight_files(folder):
        with safe_open(str(path), framework="pt") as shard:
            for key in shard.keys():
                yield key, shard.get_tensor(key)


def map_state(
    tensors: Iterator[tuple[str, torch.Tensor]], modules: dict[str, str], expected: dict[str, torch.Size]
) -> dict[str, torch.Tensor]:
    """Rename every Wan tensor to ours, strictly: an unmapped or mis-shaped tensor fails the import.

    Wan's separate q/k/v projections are concatenated into our fused ones (`to_qkv`, `to_kv`)."""
    renamed: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}  # our (separate) name -> Wan's, for the error message
    unmapped, wrong_shape = [], []
    for key, tensor in tensors:
        module, _, leaf = key.rpartition(".")
        if key in modules:  # a bare parameter (the scale-shift tables)
            ours = modules[key]
        elif module in modules:
            ours = f"{modules[module]}.{leaf}"
        else:
            unmapped.append(key)
            continue
        renamed[ours], origin[ours] = tensor, key
    fused = fused_projections(renamed)

    def wan_names(ours: str) -> str:
        if ours in origin:
            return origin[ours]
        attention, leaf = ours.split(".to_")[0], ours.rpartition(".")[2]
        parts = [
            k for k in renamed if k not in fused and k.startswith(f"{attention}.to_") and k.endswith(leaf)
        ]
        return " + ".join(origin[k] for k in parts)

    state: dict[str, torch.Tensor] = {}
    for ours, tensor in fused.items():
        if ours not in expected:
            unmapped.append(wan_names(ours))
            continue
        want = expected[ours]
        if (
            ours == "patch_embed.weight"
        ):  # self-conditioning doubles our input channels; Wan's half comes first
            want = torch.Size((want[0], tensor.shape[1], *want[2:]))
        if tensor.shape != want:
            wrong_shape.append(f"{wan_names(ours)}: {tuple(tensor.shape)} vs ours {tuple(want)}")
            continue
        state[ours] = tensor
    if unmapped or wrong_shape:
        raise WanImportError(
            f"{len(unmapped)} Wan tensors have no counterpart {unmapped[:8]}; "
            f"{len(wrong_shape)} have another shape {wrong_shape[:8]}"
        )
    return state


def import_wan_transformer(folder: str | Path) -> VideoDiT:
    """Our VideoDiT computing exactly the Wan2.1 transformer saved in `folder` (fp32 on the CPU)."""
    folder = Path(folder)
    config, layout = read_config(folder)
    dit_cfg, latent_channels, text_dim = dit_config(config, layout)
    dit = VideoDiT(dit_cfg, latent_channels, text_dim)
    own = dit.state_dict()
    state = map_state(
        wan_tensors(folder), module_map(dit_cfg.depth, layout), {k: v.shape for k, v in own.items()}
    )
    fresh = {k for k in own if ".ref_attn." in k or ".norm_ref." in k}
    missing = sorted(set(own) - set(state) - fresh)
    if missing:
        raise WanImportError(f"{folder}: {len(missing)} of our tensors have no Wan source {missing[:8]}")
    patch = state.pop("patch_embed.weight")
    with torch.no_grad():
        own["patch_embed.weight"].zero_()[:, : patch.shape[1]].copy_(patch)
        for key, tensor in state.items():
            own[key].copy_(tensor)
    return dit


@dataclass
class WanImport:
    """What `import_wan` wrote, and which encoder locations the user still has to fill."""

    out: Path
    config: AlchemistConfig
    dit_parameters: int
    personalization_parameters: int
    unset: list[str]  # config fields left for the user, e.g. ["text.path"]


def sibling(transformer: Path, name: str, given: str | None) -> str | None:
    """A published diffusers pipeline folder holds the encoders beside `transformer/`."""
    if given:
        return given
    candidate = transformer.parent / name
    return (
        str(candidate)
        if (candidate / "config.json").is_file() or (candidate / "tokenizer.json").is_file()
        else None
    )


def vae_factors(folder: str | None) -> dict[str, int]:
    """AutoencoderKLWan's compression from its config (Wan2.1's: 8x spatial, 4x temporal); {} keeps those."""
    if folder is None or not (Path(folder) / "config.json").is_file():
        return {}
    config = json.loads((Path(folder) / "config.json").read_text())
    if "dim_mult" not in config:
        return {}
    return {
        "spatial_factor": 2 ** (len(config["dim_mult"]) - 1),
        "temporal_factor": 2 ** sum(bool(x) for x in config.get("temperal_downsample", [])),
    }


def import_wan(
    transformer: str | Path,
    out: str | Path,
    text_encoder: str | None = None,
    tokenizer: str | None = None,
    vae: str | None = None,
    image_encoder: str | None = None,
) -> WanImport:
    """Write a stage-1 Video Alchemist checkpoint (`VideoAlchemist.from_pretrained` loads it) from Wan2.1.

    UMT5-XXL and AutoencoderKLWan are Wan's own encoders: taken from the arguments or from the pipeline
    folder around `transformer`, and otherwise recorded as `unset:` locations for the user to fill. DINOv2
    (references) is ours: without `image_encoder`, a small random one is saved and tagged as random."""
    transformer = Path(transformer)
    dit = import_wan_transformer(transformer)
    text_path = sibling(transformer, "text_encoder", text_encoder)
    tokenizer_path = sibling(transformer, "tokenizer", tokenizer)
    vae_path = sibling(transformer, "vae", vae)
    base = wan21_t2v("14b" if dit.config.hidden_size == 5120 else "1.3b")
    sized = (dit.config.hidden_size, dit.config.depth) in ((1536, 30), (5120, 40))
    config = dataclasses.replace(
        base,
        name=base.name if sized else "wan2.1-t2v-import",
        dit=dit.config,
        text=dataclasses.replace(
            base.text,
            path=text_path or f"{UNSET}UMT5-XXL encoder folder (the Wan2.1 diffusers folder's text_encoder/)",
            tokenizer_path=tokenizer_path or text_path,
        ),
        vae=dataclasses.replace(
            base.vae,
            **vae_factors(vae_path),
            latent_channels=dit.latent_channels,
            path=vae_path or f"{UNSET}AutoencoderKLWan folder (the Wan2.1 diffusers folder's vae/)",
        ),
        image=dataclasses.replace(base.image, path=image_encoder)
        if image_encoder
        else ImageEncoderConfig(kind="dinov2", image_size=224, patch_size=14, token_grid=8),
    )
    images = ImageEncoder(config.image)
    binder = EntityBinder(
        images.dim, dit.config.text_dim, config.text.max_word_tokens, dit.config.hidden_size, True
    )
    state = {f"dit.{k}": v for k, v in dit.state_dict().items()}
    state.update({f"binder.{k}": v for k, v in binder.state_dict().items()})
    if images.random_weights:
        state.update({f"image_encoder.{k}": v for k, v in images.state_dict().items()})
    state = {k: v.detach().contiguous() for k, v in state.items()}
    write_checkpoint(out, config, 1, ["image"] if images.random_weights else [], state)
    unset = [
        f for f, v in (("text.path", config.text.path), ("vae.path", config.vae.path)) if v.startswith(UNSET)
    ]
    personalization = sum(p.numel() for p in dit.personalization_parameters()) + sum(
        p.numel() for p in binder.parameters()
    )
    return WanImport(Path(out), config, sum(p.numel() for p in dit.parameters()), personalization, unset)
