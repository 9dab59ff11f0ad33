"""Fixtures for this folder; the MLflow store (`mlflow_store`) comes from tests/conftest.py."""

from __future__ import annotations
