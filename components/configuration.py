"""Configuration of a model, assembled without importing torch: a preset or a saved checkpoint's config, plus
`--set section.field=value` overrides and encoder locations. `components/weights.py` turns the result into
weights; this half is light, so commands check a user's configuration in a second, before anything heavy loads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from model.config import AlchemistConfig, preset

Overrides = Mapping[str, Mapping[str, Any]]  # {"dit": {"depth": 4}, "text": {"path": "s3://..."}}
# What may change on a trained checkpoint: where its encoders live, and how it samples and at what size.
CHECKPOINT_FIELDS = {
    "text": {"path", "tokenizer_path"},
    "image": {"path"},
    "vae": {"path"},
    "flow": None,
    "video": None,
}
LOCATION_OPTIONS = {
    "text_encoder": ("text", "path"),
    "image_encoder": ("image", "path"),
    "vae": ("vae", "path"),
}


class ModelConfigError(ValueError):
    """An override names a field that does not exist, or one a trained checkpoint cannot change."""


def parse_assignments(assignments: Sequence[str]) -> dict[str, dict[str, Any]]:
    """["dit.depth=4", "text.path=s3://w/umt5"] -> {"dit": {"depth": 4}, "text": {"path": "s3://w/umt5"}}.

    Values are read as JSON when they parse (numbers, true/false, null, lists), else kept as strings."""
    overrides: dict[str, dict[str, Any]] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise ModelConfigError(f"--set {assignment!r}: expected section.field=value, e.g. dit.depth=4")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides.setdefault(section, {})[name] = value
    return overrides


def merge_overrides(*layers: Overrides) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            merged.setdefault(section, {}).update(values)
    return merged


def location_overrides(**locations: str | None) -> dict[str, dict[str, Any]]:
    """text_encoder= / image_encoder= / vae= options as overrides ("" or None: keep the config's)."""
    overrides: dict[str, dict[str, Any]] = {}
    for option, location in locations.items():
        if location:
            section, name = LOCATION_OPTIONS[option]
            overrides.setdefault(section, {})[name] = location
    return overrides


def configure(
    base: AlchemistConfig, overrides: Overrides, allowed: Mapping[str, set | None] | None = None
) -> AlchemistConfig:
    """`base` with `overrides` applied, every name checked; with `allowed`, only those fields may change."""
    tree = base.to_dict()
    for section, values in overrides.items():
        if section not in tree or not isinstance(tree[section], dict):
            sections = ", ".join(k for k, v in tree.items() if isinstance(v, dict))
            raise ModelConfigError(f"--set {section}.*: {section!r} is not a config section ({sections})")
        unknown = sorted(set(values) - set(tree[section]))
        if unknown:
            raise ModelConfigError(f"--set {section}.{unknown[0]}: {section} has no field {unknown[0]!r}")
        if allowed is not None:
            fixed = [
                f
                for f, v in values.items()
                if (section not in allowed or (allowed[section] is not None and f not in allowed[section]))
                and json.dumps(v) != json.dumps(tree[section][f])  # restating a saved value is no change
            ]
            if fixed:
                raise ModelConfigError(
                    f"--set {section}.{fixed[0]}: a trained checkpoint's {section}.{fixed[0]} cannot change "
                    f"(only encoder locations, flow.* and video.*)"
                )
        tree[section].update(values)
    try:
        return AlchemistConfig.from_dict(tree)
    except (TypeError, ValueError) as error:
        raise ModelConfigError(f"--set: {error}") from None


def preset_config(name: str, overrides: Overrides | None = None) -> AlchemistConfig:
    try:
        base = preset(name)
    except ValueError as error:
        raise ModelConfigError(str(error)) from None
    return configure(base, overrides or {})
