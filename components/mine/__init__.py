"""Mine personalization data (entity words, masks, references, backgrounds) from captioned videos."""

from components.mine.config import MinerConfig
from components.mine.entities import EntityExtractionError, EntityWord, RuleExtractor, validate_entities
from components.mine.run import MiningSummary, assign_splits, mine_dataset
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
    "mine_dataset",
    "validate_entities",
]
