"""Build the configured backend of each swappable step (heavy libraries load only when chosen)."""

from __future__ import annotations

from pathlib import Path

from components.mine.background import Fill, inpaint_opencv
from components.mine.config import MinerConfig
from components.mine.entities import EntityExtractor, RuleExtractor
from components.mine.segment import MaskFolderSegmenter, MotionSegmenter, Segmenter


def build_extractor(config: MinerConfig) -> EntityExtractor:
    if config.entities == "rules":
        return RuleExtractor()
    from components.mine.llm import HttpChat, LLMExtractor, TransformersChat

    if config.entities == "llm-local":
        return LLMExtractor(TransformersChat(Path(config.llm_model_dir)), attempts=config.llm_attempts)
    chat = HttpChat(config.llm_url, model=config.llm_model, api_key_env=config.llm_api_key_env)
    return LLMExtractor(chat, attempts=config.llm_attempts)


def build_segmenter(config: MinerConfig) -> Segmenter:
    if config.segmenter == "motion":
        return MotionSegmenter(config.motion_threshold, config.min_area, config.max_area)
    if config.segmenter == "masks":
        return MaskFolderSegmenter(Path(config.masks_dir))
    from components.mine.grounded_sam import GroundedSamSegmenter

    return GroundedSamSegmenter.from_config(config)


def build_fill(config: MinerConfig) -> Fill:
    """The spatial inpainter: a diffusers model for `inpaint="diffusers"`, else OpenCV."""
    if config.inpaint != "diffusers":
        return inpaint_opencv
    from components.mine.background import DiffusersInpainter

    return DiffusersInpainter.from_pretrained(
        config.inpaint_model_dir, resolution=config.inpaint_resolution, steps=config.inpaint_steps
    )
