"""Mine personalization data (entity words, masks, references, backgrounds) from captioned videos."""

from components.mine.config import MinerConfig
from components.mine.entities import EntityExtractionError, EntityWord, RuleExtractor, validate_entities
from components.mine.run import (
    MiningSummary,
    assign_splits,
    merge_datasets,
    mine_dataset,
    mine_shard,
    plan_shards,
)
from components.mine.sample import SampleRejected
from components.mine.segment import Detection, MaskFolderSegmenter, MotionSegmenter, SegmentRequest

__all__ = [
    "Detection",
    "EntityExtractionError",
    "EntityWord",
    "MaskFolderSegmenter",
    "MinerConfig",
    "MiningSummary",
    "MotionSegmenter",
    "RuleExtractor",
    "SampleRejected",
    "SegmentRequest",
    "assign_splits",
    "merge_datasets",
    "mine_dataset",
    "mine_shard",
    "plan_shards",
    "validate_entities",
]
