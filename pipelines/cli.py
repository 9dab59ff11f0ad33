"""The `alchemist` command line: every module in `pipelines.commands` adds its commands here."""

import importlib
import os
import pkgutil
import sys

import click
import typer
from typer.core import TyperGroup, TyperOption

from pipelines import commands

# The order a newcomer runs them in; `--help` lists commands this way (unknown ones last).
WORKFLOW = (
    "make-embedded-dataset",
    "model",
    "mine",
    "data",
    "train",
    "evaluate",
    "promote",
    "runs",
    "serve",
    "generate",
    "pipeline",
)


class WorkflowGroup(TyperGroup):
    """Lists commands in workflow order instead of registration order."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        rank = {name: i for i, name in enumerate(WORKFLOW)}
        return sorted(super().list_commands(ctx), key=lambda name: rank.get(name, len(WORKFLOW)))


_typed_display = TyperOption.display_type_rich


def _flag_display(self: TyperOption, ctx: click.Context) -> str | None:
    """A flag takes no value, so help shows no `<bool>` beside it (typer shows one for every option)."""
    return None if self.is_flag else _typed_display(self, ctx)


TyperOption.display_type_rich = _flag_display

if not sys.stderr.isatty():
    # Progress bars redraw in place on a terminal; in a log file each redraw is a line, so keep them sparse.
    os.environ.setdefault("TQDM_MININTERVAL", "30")

app = typer.Typer(
    cls=WorkflowGroup,
    help="Video Alchemist: mine data, train, evaluate, serve and promote personalized video models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
    importlib.import_module(f"{commands.__name__}.{module_info.name}").register(app)


if __name__ == "__main__":
    app()
