"""The embedded worlds for the question "does a reference steer what the model paints?".

Shared by the demo (`alchemist pipeline run --local` ends with a reference check) and
`benchmarks/learns_personalization.py`. Both use a world where two equally sized identities of any kind
move in separate lanes, so neither size nor kind tells which reference goes where; the demo's world also
names the entities by lane ("the bird moves right and the ball moves left across the grass", bird = upper)
so the words say where and only the references say how each entity looks. The measurement itself is
`components.evaluate.reference_check`, given `LANE_WORDS`.
"""

from __future__ import annotations

import dataclasses

from components.embedded.compose import EmbeddedConfig

ENTITY_SIZE = (0.34, 0.42)  # one size range for every identity: size must not say who is who
WORLD = EmbeddedConfig(
    two_entity_prob=1.0, cross_prob=0.0, pairing="any", subject_size=ENTITY_SIZE, object_size=ENTITY_SIZE
)
LANE_WORDS = (
    "bird",
    "ball",
)  # upper, lower: a subject and an object word of the miner's lexicon (evaluation modes need a subject), free of any identity
DEMO_WORLD = dataclasses.replace(WORLD, lane_words=LANE_WORDS)
