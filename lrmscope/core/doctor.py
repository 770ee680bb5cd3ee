"""`lrmscope doctor`: checks of the install, each one line (ok / warn / fail) with what to fix.

Reads only: llama.cpp's build flags, the CPU, the embedded model's metadata (no decoding), torch
and transformers if installed, and the database's schema version (opened read-only). No network.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

from lrmscope import __version__
from lrmscope.errors import LrmscopeError

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("python", "ok", f"{version} ({sys.executable})")


def lrmscope_version() -> Check:
    return Check("lrmscope", "ok", __version__)


def llama_build() -> Check:
    import llama_cpp

    from lrmscope.engine.llama import gpu_offload_supported

    build = f"llama-cpp-python {llama_cpp.__version__}"
    if gpu_offload_supported():
        return Check("llama.cpp", "ok", f"{build}, CUDA build")
    if Path("/proc/driver/nvidia").exists():
        return Check(
            "llama.cpp",
            "warn",
            f"{build}, CPU-only build on a machine with an NVIDIA GPU",
            'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
            "llama-cpp-python",
        )
    return Check("llama.cpp", "ok", f"{build}, CPU-only build")


def llama_system() -> Check:
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace").strip(" |")
    return Check("llama.cpp system", "ok", info)


def amx() -> Check:
    from lrmscope.engine.llama import cpu_has_amx

    if cpu_has_amx():
        return Check(
            "AMX",
            "ok",
            "this CPU has AMX, whose weight repacking in llama.cpp crashes on the "
            "first decode; lrmscope turns repacking off automatically (--extra-bufts forces it on)",
        )
    return Check("AMX", "ok", "no AMX on this CPU; weight repacking stays on")


def threads() -> Check:
    from lrmscope.engine.threads import default_choice

    choice = default_choice()
    detail = f"a model loaded now takes {choice.describe()}"
    if choice.load - choice.others_threads >= choice.cores:
        return Check(
            "threads",
            "warn",
            f"{detail}: the machine is busy with other programs, and threads competing for "
            "cores slow decoding down sharply",
            "pass --threads N with N at most the idle cores, e.g. --threads 1",
        )
    return Check("threads", "ok", detail)


def embedded_model() -> Check:
    from lrmscope.core.models import describe
    from lrmscope.engine.llama import GgufVocab
    from lrmscope.engine.models import embedded_model_path

    path = embedded_model_path()
    entry = describe(path, "embedded")
    GgufVocab(path)  # llama.cpp reads its metadata and vocabulary (no weights, no decoding)
    return Check(
        "embedded model",
        "ok",
        f"{entry.name}, {entry.size}, {entry.architecture}; llama.cpp reads it ({path})",
    )


def torch_device() -> Check:
    if find_spec("torch") is None:
        return Check(
            "torch",
            "warn",
            "not installed: the llama-guard and harmbench judges need it",
            "pip install 'lrmscope[judges]' (a plain torch install may pull a multi-GB CUDA build)",
        )
    import torch

    where = (
        f"CUDA on {torch.cuda.get_device_name(0)}"
        if torch.cuda.is_available()
        else "no CUDA device: judges run on the CPU"
    )
    return Check("torch", "ok", f"{torch.__version__}, {where}")


def transformers() -> Check:
    try:
        return Check("transformers", "ok", metadata.version("transformers"))
    except metadata.PackageNotFoundError:
        return Check(
            "transformers",
            "warn",
            "not installed: the llama-guard and harmbench judges need it",
            "pip install 'lrmscope[judges]'",
        )


def database(path: Path) -> Check:
    from lrmscope.store import Store
    from lrmscope.store.db import schema_version
    from lrmscope.store.schema import SCHEMA_VERSION

    name = f"database {path}"
    if not path.exists():
        existing = next(p for p in path.parents if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            return Check(
                name,
                "fail",
                f"cannot be created: {existing} is not a writable directory",
                "fix its permissions or choose another file with --db",
            )
        return Check(name, "ok", "not created yet; made on first use")
    try:
        Store.preflight(path)  # writable, SQLite, lrmscope's, not from a newer lrmscope
    except LrmscopeError as exc:
        problem, _, fix = str(exc).rpartition("; ")
        return Check(name, "fail", problem or fix, fix if problem else "")
    version = schema_version(path)
    if version < SCHEMA_VERSION:
        return Check(name, "ok", f"schema v{version}, upgraded to v{SCHEMA_VERSION} on next use")
    return Check(name, "ok", f"schema v{version} (current), writable")


def run_checks(db_path: Path, *, debug: bool = False) -> list[Check]:
    """Every check, in order. A check that breaks is reported as a failure (raised with
    `debug`)."""
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("python", python),
        ("lrmscope", lrmscope_version),
        ("llama.cpp", llama_build),
        ("llama.cpp system", llama_system),
        ("AMX", amx),
        ("threads", threads),
        ("embedded model", embedded_model),
        ("torch", torch_device),
        ("transformers", transformers),
        (f"database {db_path}", lambda: database(db_path)),
    ]
    results = []
    for name, check in checks:
        try:
            results.append(check())
        except LrmscopeError as exc:
            results.append(Check(name, "fail", str(exc)))
        except ImportError as exc:
            results.append(
                Check(
                    name,
                    "fail",
                    f"cannot import {exc.name or exc}",
                    "reinstall lrmscope: pip install --force-reinstall lrmscope",
                )
            )
        except Exception as exc:  # a diagnosis reports what broke, never crashes
            if debug:
                raise
            results.append(
                Check(
                    name,
                    "fail",
                    f"{type(exc).__name__}: {exc}",
                    "run `lrmscope --debug doctor` for the traceback, and report it",
                )
            )
    return results
