"""The one path from configuration to weights, used by every step (train, evaluate, export, serve, benchmarks).

`components/configuration.py` assembles the config (preset or checkpoint, overrides, locations); this resolves
every location once, to a local folder (S3 through the boto3 cache), and builds or loads the model. `model/`
reads local folders only.
"""

from __future__ import annotations

from pathlib import Path

from components.configuration import CHECKPOINT_FIELDS, Overrides, configure
from components.storage import is_s3, materialize
from model.alchemist import VideoAlchemist, with_local_paths
from model.config import AlchemistConfig, checkpoint_config
from model.generator import Generator


def locate(location: str) -> str:
    """`model/`'s `locate`: S3 fetched; the model itself names any other missing or unfilled location."""
    return str(materialize(location)) if is_s3(location) else location


def build_model(config: AlchemistConfig, load_encoders: bool = True) -> VideoAlchemist:
    model = VideoAlchemist(with_local_paths(config, locate) if load_encoders else config, load_encoders)
    model.config = config  # checkpoints record the portable locations
    return model


def load_model(
    checkpoint: str | Path,
    device: str = "cpu",
    overrides: Overrides | None = None,
    load_encoders: bool = True,
) -> VideoAlchemist:
    """A saved checkpoint (local or s3://), with encoder locations, flow or video size overridden."""
    folder = locate(str(checkpoint))
    config = configure(checkpoint_config(folder), overrides, CHECKPOINT_FIELDS) if overrides else None
    return VideoAlchemist.from_pretrained(folder, device, locate, config, load_encoders)


def load_generator(
    checkpoint: str | Path, device: str = "cpu", overrides: Overrides | None = None
) -> Generator:
    return Generator(load_model(checkpoint, device, overrides), device)
