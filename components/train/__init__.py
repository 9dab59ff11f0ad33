"""Training: the mined dataset as batches, DeepSpeed ZeRO, two stages, checkpoints, MLflow.

`from components.train.trainer import train` runs it; this package init stays import-light so that the CLI
can read `components.train.config` without loading torch.
"""
