"""`lrmscope review [DB]`: browse saved runs (the app itself is lrmscope/tui/review/app.py)."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from lrmscope.errors import LrmscopeError


def register(commands) -> None:
    review = commands.add_parser(
        "review",
        help="browse every saved run: filters, search, human labels, metrics and plots",
        description="A full-screen browser of the runs and chat sessions in a database: samples "
        "with filters, sort and full-text search, all samples of a prompt with its Safe@1 / "
        "Safe@K / ConsSafe@K, one sample with injected text and flags highlighted and every "
        "verdict, human labels (judge 'human'), metrics with plots, and export. No model needed; "
        "it updates live while an eval writes to the database. ? lists the keys.",
    )
    review.add_argument(
        "database",
        nargs="?",
        metavar="DB",
        help="an lrmscope database (default: the default database; when there is none, a "
        "temporary copy of the committed demo run)",
    )
    review.set_defaults(func=cmd_review)


def cmd_review(args: argparse.Namespace) -> int:
    from lrmscope.core.review import ReviewDB, demo_database
    from lrmscope.store.db import default_db_path
    from lrmscope.tui.review.app import ReviewApp

    path = Path(args.database).expanduser() if args.database else default_db_path()
    with tempfile.TemporaryDirectory(prefix="lrmscope-review-") as scratch:
        note = None
        if args.database is None and not path.exists():
            demo = demo_database()
            if demo is None:
                raise LrmscopeError(
                    f"no database at {path} yet: make a run (`lrmscope eval --dataset demo`) "
                    "or pass a database file"
                )
            path = Path(shutil.copy(demo, scratch))
            note = f"the demo run (no database at {default_db_path()} yet); labels are not kept"
        db = ReviewDB(path)
        try:
            ReviewApp(db, note=note).run()
        finally:
            db.close()
    return 0
