"""Gate policy: a YAML file of thresholds, no-regression tolerances and must-improve metrics.

Metric names are the evaluation's MLflow keys without the `eval/` prefix: `<mode>/<metric>`, e.g.
`subject/subj_s`, `all/text_s`, `toy/binding_accuracy`. Every metric is higher-is-better.

    name: default
    description: why this policy exists
    allow_random_evaluators: false
    allow_unknown_data_rev: false   # a candidate without a DVC data revision fails unless true
    allow_unlike_baseline: false    # a champion scored on another benchmark fails the gate unless true
    thresholds:          # candidate must reach at least this value
      subject/subj_s: 0.5
    must_not_regress:    # candidate >= champion - tolerance
      subject/subj_s: 0.01
    must_improve:        # candidate > champion (skipped when there is no champion yet)
      - subject/subj_s
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

POLICY_DIR = Path(__file__).parent / "policies"
FLAGS = ("allow_random_evaluators", "allow_unknown_data_rev", "allow_unlike_baseline")


class PolicyError(ValueError):
    """A policy file is missing or malformed."""


@dataclass(frozen=True)
class GatePolicy:
    name: str
    description: str = ""
    allow_random_evaluators: bool = False
    allow_unknown_data_rev: bool = False
    allow_unlike_baseline: bool = False  # True: skip the champion comparison (and say so) instead of failing
    thresholds: dict[str, float] = field(default_factory=dict)
    must_not_regress: dict[str, float] = field(default_factory=dict)
    must_improve: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        """Content hash: the same policy text always gives the same decision key."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def metrics(self) -> list[str]:
        return sorted(set(self.thresholds) | set(self.must_not_regress) | set(self.must_improve))


def _number_map(raw: object, key: str, source: str) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: {key} must be a mapping metric -> number, got {type(raw).__name__}")
    out = {}
    for metric, value in raw.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise PolicyError(f"{source}: {key}[{metric!r}]={value!r} must be a number")
        if "/" not in str(metric):
            raise PolicyError(
                f"{source}: {key} metric {metric!r} must be '<mode>/<metric>', e.g. 'subject/subj_s'"
            )
        out[str(metric)] = float(value)
    return out


def parse_policy(data: dict, source: str = "<policy>") -> GatePolicy:
    if not isinstance(data, dict) or "name" not in data:
        raise PolicyError(f"{source}: a policy is a mapping with at least 'name'")
    unknown = set(data) - {
        "name",
        "description",
        *FLAGS,
        "thresholds",
        "must_not_regress",
        "must_improve",
    }
    if unknown:
        raise PolicyError(f"{source}: unknown keys {sorted(unknown)}")
    flags = {key: data.get(key, False) for key in FLAGS}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise PolicyError(f"{source}: {key}={value!r} must be true or false")
    improve = data.get("must_improve") or []
    if not isinstance(improve, list) or not all(isinstance(m, str) and "/" in m for m in improve):
        raise PolicyError(
            f"{source}: must_improve must be a list of '<mode>/<metric>' names, got {improve!r}"
        )
    regress = _number_map(data.get("must_not_regress"), "must_not_regress", source)
    if any(v < 0 for v in regress.values()):
        raise PolicyError(f"{source}: must_not_regress tolerances must be >= 0, got {regress}")
    return GatePolicy(
        name=str(data["name"]),
        description=str(data.get("description", "")).strip(),
        **flags,
        thresholds=_number_map(data.get("thresholds"), "thresholds", source),
        must_not_regress=regress,
        must_improve=tuple(improve),
    )


def load_policy(name_or_path: str | Path) -> GatePolicy:
    """A policy by file path, or by name from the bundled `policies/` folder (`demo`, `default`)."""
    path = Path(name_or_path)
    if not path.is_file():
        bundled = POLICY_DIR / f"{name_or_path}.yaml"
        if not bundled.is_file():
            names = sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))
            raise PolicyError(f"policy {str(name_or_path)!r} is neither a file nor a bundled policy {names}")
        path = bundled
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise PolicyError(f"{path}: not valid YAML: {err}") from err
    return parse_policy(data, str(path))
