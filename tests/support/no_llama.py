"""The fast loop without llama.cpp: `pytest tests/unit` alone runs as if llama-cpp-python were not
installed (tests/conftest.py), in the processes its tests start too."""

from __future__ import annotations

import os
import sys
from pathlib import Path

UNIT = Path(__file__).parents[1] / "unit"
# A llama_cpp package whose import fails as a missing one's does, put first on the path.
SHADOW = Path(__file__).parent / "no_llama_shadow"


def only_unit_tests(invocation_dir: Path, args: list[str]) -> bool:
    """True when every path a pytest run was given lies under tests/unit."""
    paths = [(invocation_dir / arg.split("::")[0]).resolve() for arg in args]
    return bool(paths) and all(path.is_relative_to(UNIT.resolve()) for path in paths)


def hide_llama() -> None:
    if "llama_cpp" in sys.modules:
        raise RuntimeError("llama_cpp was imported before it could be hidden")
    sys.path.insert(0, str(SHADOW))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, (str(SHADOW), os.environ.get("PYTHONPATH")))
    )


def llama_hidden() -> bool:
    return str(SHADOW) in sys.path
