"""The embedded dataset: short clips composited from scikit-image photographs, with exact ground truth."""

from components.embedded.compose import EmbeddedConfig, RenderedSample, SamplePlan, plan_sample, render_sample
from components.embedded.generate import EmbeddedDataset, generate_embedded_dataset
from components.embedded.identities import BACKDROPS, IDENTITIES, backdrop_texture, identity_crop

__all__ = [
    "BACKDROPS",
    "IDENTITIES",
    "EmbeddedConfig",
    "EmbeddedDataset",
    "RenderedSample",
    "SamplePlan",
    "backdrop_texture",
    "generate_embedded_dataset",
    "identity_crop",
    "plan_sample",
    "render_sample",
]
