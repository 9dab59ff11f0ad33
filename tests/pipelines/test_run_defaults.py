"""`alchemist pipeline run`'s defaults are the embedded run's (LocalSettings): one recipe, printed in --help."""

import dataclasses
import inspect

from pipelines.commands.pipeline import run
from pipelines.local import LocalSettings

# CLI option -> LocalSettings field, where the names differ
RENAMED = {"lr": "learning_rate", "sample_steps": "eval_steps", "policy": "gate_policy", "videos": "data"}


def test_every_shared_default_is_the_local_settings_default():
    settings = {f.name: f.default for f in dataclasses.fields(LocalSettings)}
    checked = 0
    for name, parameter in inspect.signature(run).parameters.items():
        field = RENAMED.get(name, name)
        if field in settings and settings[field] is not dataclasses.MISSING:
            assert parameter.default.default == settings[field], (
                f"--{name} default differs from LocalSettings"
            )
            checked += 1
    assert checked >= 12
