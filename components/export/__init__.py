"""Export step: a trained checkpoint -> a versioned, self-contained Triton model repository."""

from components.export.publish import repository_publisher
from components.export.repository import (
    ExportError,
    ExportResult,
    default_limits,
    export_model_repository,
    render_config,
)

__all__ = [
    "ExportError",
    "ExportResult",
    "default_limits",
    "export_model_repository",
    "render_config",
    "repository_publisher",
]
