"""Data versioning with DVC: `version_dataset` records a mined dataset, `checkout_dataset` gets it back by rev."""

from components.version.versioning import (
    DataVersion,
    VersionError,
    checkout_dataset,
    default_remote,
    version_dataset,
)

__all__ = ["DataVersion", "VersionError", "checkout_dataset", "default_remote", "version_dataset"]
