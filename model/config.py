"""Configuration dataclasses and the named size presets.

Each concern gets one dataclass, passed around whole; a preset is a function that returns a full
`AlchemistConfig`, and variants change fields with `dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

TextEncoderKind = Literal["bert", "t5", "umt5"]
ImageEncoderKind = Literal["dinov2", "clip"]
VAEKind = Literal["pixel", "diffusers"]
# A location the user still has to fill (e.g. the UMT5-XXL folder after a Wan import); loading names it.
UNSET = "unset:"
QKNorm = Literal["per_head", "across_heads", "none"]
TimeGrid = Literal["uniform", "flow_match"]


@dataclass
class TextEncoderConfig:
    """Frozen text encoder. `path` is a local folder; None builds `kind` from the small config below."""

    kind: TextEncoderKind = "bert"
    path: str | None = None
    tokenizer_path: str | None = None  # None: the tokenizer shipped with the offline MiniLM package
    hidden_size: int = 32  # random-weight config only
    num_layers: int = 2
    num_heads: int = 2
    max_length: int = 64
    max_word_tokens: int = 4  # sub-word tokens of one entity word kept for binding
    # Wan's convention: states zero-padded to max_length and every position attended (no key mask). A
    # pretrained Wan backbone learned its text attention on exactly that input, so an imported one keeps it.
    zero_pad_to_max_length: bool = False


@dataclass
class ImageEncoderConfig:
    """Frozen reference-image encoder: DINOv2 (the paper's choice) or CLIP vision (the ablation)."""

    kind: ImageEncoderKind = "dinov2"
    path: str | None = None
    image_size: int = 56
    patch_size: int = 14
    hidden_size: int = 32  # random-weight config only
    num_layers: int = 2
    num_heads: int = 2
    token_grid: int = 2  # patch tokens pooled to token_grid^2; l = 1 + token_grid^2 tokens per image


@dataclass
class VAEConfig:
    """Latent space. `pixel` is weight-free space-to-depth; `diffusers` loads an autoencoder folder."""

    kind: VAEKind = "pixel"
    path: str | None = None
    spatial_factor: int = 4
    temporal_factor: int = 1
    latent_channels: int = 48  # pixel: 3 * spatial_factor**2 * temporal_factor
    causal: bool = False  # a causal video VAE (Wan) encodes the first frame on its own


@dataclass
class DiTConfig:
    hidden_size: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    ffn_dim: int | None = None  # explicit FFN width (Wan2.1: 8960 at 1536); None: mlp_ratio * hidden_size
    patch_size: tuple[int, int, int] = (1, 2, 2)  # (t, h, w)
    # RMSNorm of queries and keys: over each head, or over the whole projection (heads x head_dim, as Wan).
    qk_norm: QKNorm = "per_head"
    norm_eps: float = 1e-6  # every LayerNorm and RMSNorm in the DiT
    text_dim: int | None = None  # width of the text states the DiT projects; None: the text encoder's width
    time_freq_dim: int = 256  # sinusoidal channels of the timestep embedding
    personalization: bool = True  # the dedicated personalization cross-attention in every block
    word_binding: bool = True  # concatenate the entity word's tokens with its image tokens
    self_conditioning: bool = True
    gradient_checkpointing: bool = False
    rope_theta: float = 10000.0
    # Add fixed sin-cos embeddings of each token's place in its frame to the patch tokens (on top of RoPE).
    frame_position: bool = False


@dataclass
class FlowConfig:
    """Rectified flow training and sampling."""

    timestep_sampling: Literal["logit_normal", "uniform"] = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    self_conditioning_prob: float = 0.5
    text_dropout: float = 0.1  # classifier-free guidance: drop the prompt
    reference_dropout: float = 0.1  # drop all references
    sampler: Literal["euler", "heun"] = "euler"
    shift: float = 1.0  # timestep shift at sampling (>1 spends more steps at high noise)
    # uniform: steps + 1 shifted points from 1 to 0; flow_match: diffusers' FlowMatchEulerDiscreteScheduler grid
    # (what Wan's pipelines sample on), so an imported Wan backbone samples on the schedule it was tuned with.
    time_grid: TimeGrid = "uniform"


@dataclass
class VideoConfig:
    frames: int = 8
    height: int = 32
    width: int = 32
    max_entities: int = 4
    max_references: int = 3  # images per entity


@dataclass
class AlchemistConfig:
    name: str = "tiny"
    dit: DiTConfig = field(default_factory=DiTConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    video: VideoConfig = field(default_factory=VideoConfig)

    def __post_init__(self) -> None:
        if self.dit.hidden_size % self.dit.num_heads:
            raise ValueError(
                f"dit.hidden_size={self.dit.hidden_size} must be divisible by dit.num_heads={self.dit.num_heads}"
            )
        if self.dit.qk_norm not in ("per_head", "across_heads", "none"):
            raise ValueError(
                f"dit.qk_norm={self.dit.qk_norm!r}; expected 'per_head', 'across_heads' or 'none'"
            )
        head_dim = self.dit.hidden_size // self.dit.num_heads
        if head_dim % 2 or head_dim < 6:
            raise ValueError(f"head_dim={head_dim} must be even and >= 6 to split RoPE over t, h, w")
        if self.vae.kind == "pixel":
            expected = 3 * self.vae.spatial_factor**2 * self.vae.temporal_factor
            if self.vae.latent_channels != expected:
                raise ValueError(
                    f"vae.latent_channels={self.vae.latent_channels} must be 3*spatial^2*temporal={expected}"
                )
        self.check_video_size(self.video.frames, self.video.height, self.video.width)

    @property
    def stride(self) -> tuple[int, int, int]:
        """Pixels per latent token along (t, h, w): VAE factor times patch size."""
        pt, ph, pw = self.dit.patch_size
        return (self.vae.temporal_factor * pt, self.vae.spatial_factor * ph, self.vae.spatial_factor * pw)

    def latent_grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(t, h, w) of one video's latents. A causal video VAE (Wan) encodes the first frame on its own, so
        it maps 1 + k * temporal_factor frames to 1 + k latent frames."""
        vae = self.vae
        first = int(vae.causal)
        t = first + (frames - first) // vae.temporal_factor
        return t, height // vae.spatial_factor, width // vae.spatial_factor

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, t, h, w) of one video's latents."""
        return (self.vae.latent_channels, *self.latent_grid(frames, height, width))

    def video_tokens(self, frames: int, height: int, width: int) -> int:
        """DiT tokens of one video."""
        return self.grid_tokens(self.latent_grid(frames, height, width))

    def grid_tokens(self, grid: tuple[int, ...]) -> int:
        """DiT tokens of a (t, h, w) latent grid: its cells over the patch size."""
        t, h, w = grid
        pt, ph, pw = self.dit.patch_size
        return (t // pt) * (h // ph) * (w // pw)

    def check_video_size(self, frames: int, height: int, width: int) -> None:
        """Every frame and pixel must land in a whole DiT token of the latent grid (`latent_grid`): a causal
        VAE's first frame, then whole strides."""
        first = int(self.vae.causal)
        for name, value, step, offset in zip(
            ("frames", "height", "width"), (frames, height, width), self.stride, (first, 0, 0)
        ):
            if value - offset <= 0 or (value - offset) % step:
                extra = f"{offset} + " if offset else ""
                raise ValueError(
                    f"{name}={value} must be {extra}a positive multiple of {step} for preset {self.name!r}"
                )

    def unset_locations(self) -> list[str]:
        """`field: what belongs there` for every encoder location still marked unset."""
        fields = {
            "text.path": self.text.path,
            "text.tokenizer_path": self.text.tokenizer_path,
            "image.path": self.image.path,
            "vae.path": self.vae.path,
        }
        return [f"{k}: {v[len(UNSET) :]}" for k, v in fields.items() if v and v.startswith(UNSET)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlchemistConfig:
        sections = {
            "dit": DiTConfig,
            "text": TextEncoderConfig,
            "image": ImageEncoderConfig,
            "vae": VAEConfig,
            "flow": FlowConfig,
            "video": VideoConfig,
        }
        kwargs: dict[str, Any] = {"name": data.get("name", "custom")}
        for key, section in sections.items():
            values = dict(data.get(key, {}))
            if key == "dit" and "patch_size" in values:
                values["patch_size"] = tuple(values["patch_size"])
            if key == "dit" and isinstance(values.get("qk_norm"), bool):  # checkpoints from before the choice
                values["qk_norm"] = "per_head" if values["qk_norm"] else "none"
            kwargs[key] = section(**values)
        return cls(**kwargs)


def tiny() -> AlchemistConfig:
    """Unit tests: a 2-block DiT over 8x32x32 videos, seconds on a CPU."""
    return AlchemistConfig(name="tiny")


def small() -> AlchemistConfig:
    """CPU demo and the learnability benchmark: trains in minutes on 2 cores."""
    return AlchemistConfig(
        name="small",
        # Frame positions: a small model on a short CPU budget does not learn where "upper" is from RoPE's
        # relative offsets alone, and binding words like that to references needs it (model/README.md).
        dit=DiTConfig(hidden_size=192, depth=4, num_heads=4, patch_size=(1, 2, 2), frame_position=True),
        text=TextEncoderConfig(path="builtin:minilm"),  # the pretrained MiniLM that ships offline
        # 8x32x32 with 17 tokens per reference: the size at which benchmarks/learns_personalization.py shows
        # references steering the output after about ten CPU minutes of training.
        image=ImageEncoderConfig(hidden_size=64, num_layers=2, num_heads=2, token_grid=4),
        video=VideoConfig(frames=8, height=32, width=32),
    )


def base() -> AlchemistConfig:
    """GPU cluster: a 1.0B-parameter DiT on a video VAE latent (Wan-style 4x8x8 compression, 16 channels)."""
    return AlchemistConfig(
        name="base",
        dit=DiTConfig(
            hidden_size=1536, depth=20, num_heads=16, patch_size=(1, 2, 2), gradient_checkpointing=True
        ),
        text=TextEncoderConfig(kind="umt5", max_length=256),
        image=ImageEncoderConfig(kind="dinov2", image_size=224, patch_size=14, token_grid=8),
        vae=VAEConfig(kind="diffusers", spatial_factor=8, temporal_factor=4, latent_channels=16, causal=True),
        video=VideoConfig(frames=33, height=288, width=512),
    )


def large() -> AlchemistConfig:
    """GPU cluster: a 3.0B-parameter DiT at the paper's 512x288 output."""
    config = base()
    return dataclasses.replace(
        config,
        name="large",
        dit=dataclasses.replace(config.dit, hidden_size=2304, depth=28, num_heads=24),
        video=VideoConfig(frames=65, height=288, width=512),
    )


def wan21_t2v(size: Literal["1.3b", "14b"]) -> AlchemistConfig:
    """Wan2.1 text-to-video sized exactly (its published configs), so an imported checkpoint is stage 1.

    Encoders are Wan's: UMT5-XXL text (4096 wide, 512 tokens, zero-padded and unmasked), AutoencoderKLWan
    latents (16 channels, 4x8x8), and DINOv2 for references (Video Alchemist's addition). Their folders come
    from the import (`alchemist model import-wan`) or from `text.path`, `vae.path` and `image.path`.
    """
    width, depth, heads, ffn = {"1.3b": (1536, 30, 12, 8960), "14b": (5120, 40, 40, 13824)}[size]
    return AlchemistConfig(
        name=f"wan2.1-t2v-{size}",
        dit=DiTConfig(
            hidden_size=width,
            depth=depth,
            num_heads=heads,
            ffn_dim=ffn,
            patch_size=(1, 2, 2),
            qk_norm="across_heads",
            norm_eps=1e-6,
            text_dim=4096,
            gradient_checkpointing=True,
        ),
        text=TextEncoderConfig(kind="umt5", max_length=512, zero_pad_to_max_length=True),
        image=ImageEncoderConfig(kind="dinov2", image_size=224, patch_size=14, token_grid=8),
        vae=VAEConfig(kind="diffusers", spatial_factor=8, temporal_factor=4, latent_channels=16, causal=True),
        # Wan's docs sample 480p with flow shift 3.0 (5.0 at 720p)
        flow=FlowConfig(shift=3.0, time_grid="flow_match"),
        video=VideoConfig(frames=81, height=480, width=832),
    )


PRESETS: dict[str, Callable[[], AlchemistConfig]] = {
    "tiny": tiny,
    "small": small,
    "base": base,
    "large": large,
    "wan2.1-t2v-1.3b": lambda: wan21_t2v("1.3b"),
    "wan2.1-t2v-14b": lambda: wan21_t2v("14b"),
}
PRESET_NAMES = tuple(PRESETS)


def preset(name: str) -> AlchemistConfig:
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is unknown; expected one of {', '.join(PRESET_NAMES)}")
    return PRESETS[name]()


CONFIG_FILE = "config.json"  # a checkpoint's config; read without torch, so inputs are checked in a second


def checkpoint_meta(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a Video Alchemist checkpoint: {CONFIG_FILE} is missing")
    return json.loads(path.read_text())


def checkpoint_config(directory: str | Path) -> AlchemistConfig:
    return AlchemistConfig.from_dict(checkpoint_meta(directory)["config"])
