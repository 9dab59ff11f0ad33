"""One module per command group; each exposes `register(app: typer.Typer) -> None`.

Modules import heavy libraries (mlflow, kfp, dvc, deepspeed) inside the command functions, so that
`alchemist --help` stays fast.
"""
