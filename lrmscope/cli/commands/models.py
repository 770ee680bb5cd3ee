"""`lrmscope models`: the models lrmscope can run here, and the GPU or CPU it would use."""

from __future__ import annotations

import argparse

from rich.text import Text


def register(commands) -> None:
    models = commands.add_parser(
        "models",
        help="list the models lrmscope can run and the GPU/CPU it would use",
        description="List the embedded model and the GGUF files in the models directory "
        "($LRMSCOPE_MODELS, or models/ in the user data directory), and what llama.cpp offers "
        "on this machine.",
    )
    models.add_argument("--dir", action="append", metavar="DIR", help="another folder to scan")
    models.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lrmscope.core.models import describe_machine, find_models
    from lrmscope.text import visible

    console = Console(highlight=False)
    models = find_models(args.dir or [])  # a bad --dir is reported before anything is printed
    machine = describe_machine()
    for key, value in machine.items():
        console.print(Text.assemble((f"{key}: ", "bold"), visible(str(value))))
    table = Table("source", "model", "size", "architecture", "think in template", "path")
    for model in models:
        cells = (model.source, model.name, model.size, model.architecture, model.think_template)
        table.add_row(*(Text(visible(cell)) for cell in (*cells, str(model.path))))
    console.print(table)
    return 0
