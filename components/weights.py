"""Build or load the model with encoder weights and checkpoints that may live on S3.

`model/` reads local folders only; this maps `s3://` locations to a local cache (boto3) first, and leaves
local paths and the built-in offline MiniLM alone.
"""

from __future__ import annotations

from pathlib import Path

from model.alchemist import VideoAlchemist, with_local_paths
from model.config import AlchemistConfig
from model.generator import Generator


def locate(location: str) -> str:
    if location.startswith("s3://"):
        from components.storage import materialize

        return str(materialize(location))
    return location


def build_model(config: AlchemistConfig) -> VideoAlchemist:
    model = VideoAlchemist(with_local_paths(config, locate))
    model.config = config  # checkpoints record the portable locations
    return model


def load_model(checkpoint: str | Path, device: str = "cpu") -> VideoAlchemist:
    return VideoAlchemist.from_pretrained(locate(str(checkpoint)), map_location=device, locate=locate)


def load_generator(checkpoint: str | Path, device: str = "cpu") -> Generator:
    return Generator(load_model(checkpoint, device), device)
