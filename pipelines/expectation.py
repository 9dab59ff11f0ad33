"""What a demo-sized model can make, said wherever a user meets a generated video (`generate`, `pipeline run`).

A model trained on the embedded data for CPU minutes must not pass colour fields off as a result.
"""

EXPECTATION = (
    "what to expect: a model trained on the embedded demo data (tiny/small presets, CPU minutes) paints "
    "colour fields where the references belong, not recognisable objects; the model card (README.md beside "
    "config.pbtxt) says what this one was trained on"
)
