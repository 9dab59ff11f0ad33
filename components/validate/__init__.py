"""Great Expectations validation of a mined dataset: `validate_dataset` returns a `ValidationOutcome`."""

from components.manifest import ManifestError
from components.validate.config import ValidationConfig
from components.validate.report import DataValidationError, FailedExpectation, ValidationOutcome
from components.validate.validation import validate_dataset

__all__ = [
    "DataValidationError",
    "FailedExpectation",
    "ManifestError",
    "ValidationConfig",
    "ValidationOutcome",
    "validate_dataset",
]
