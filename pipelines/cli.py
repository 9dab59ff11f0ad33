"""The `alchemist` command line: every module in `pipelines.commands` adds its commands here."""

import importlib
import pkgutil

import typer

from pipelines import commands

app = typer.Typer(
    help="Video Alchemist: mine data, train, evaluate, serve and promote personalized video models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
    importlib.import_module(f"{commands.__name__}.{module_info.name}").register(app)


if __name__ == "__main__":
    app()
