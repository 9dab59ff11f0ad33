"""Promotion gate: a YAML policy decides whether an evaluated model becomes the served `champion`."""
