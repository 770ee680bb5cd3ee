"""What can run here: the models on disk and the llama.cpp build's devices (`lrmscope models`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
from platformdirs import user_data_dir

from lrmscope.engine.llama import cpu_has_amx, gpu_offload_supported
from lrmscope.engine.models import embedded_model_path
from lrmscope.engine.threads import default_choice
from lrmscope.errors import LrmscopeError


@dataclass(frozen=True)
class ModelEntry:
    source: str
    name: str
    path: Path
    size: str
    architecture: str
    think_template: str


def models_dir() -> Path:
    return Path(
        os.environ.get("LRMSCOPE_MODELS")
        or Path(user_data_dir("lrmscope", appauthor=False)) / "models"
    )


def _size(path: Path) -> str:
    size = float(path.stat().st_size)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def _field(reader, key: str) -> str | None:
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.contents()
    return value if isinstance(value, str) else str(value)


def describe(path: Path, source: str) -> ModelEntry:
    """Read a GGUF's header with the gguf package (memory-mapped; no weights are loaded)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
        arch = _field(reader, "general.architecture") or "?"
        name = _field(reader, "general.name") or path.stem
        template = _field(reader, "tokenizer.chat_template") or ""
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not raised
        return ModelEntry(source, path.stem, path, "?", f"unreadable ({exc})", "?")
    think = (
        "ends with <think>"
        if "<think>" in template[-200:]
        else ("yes" if "<think>" in template else "no")
    )
    return ModelEntry(source, name, path, _size(path), arch, think)


def find_models(extra_dirs: Iterable[str | Path] = ()) -> list[ModelEntry]:
    entries = []
    try:
        entries.append(describe(embedded_model_path(), "embedded"))
    except LrmscopeError:
        pass
    for folder in [models_dir(), *map(Path, extra_dirs)]:
        folder = folder.expanduser()
        if folder.is_dir():
            entries.extend(describe(p, str(folder)) for p in sorted(folder.rglob("*.gguf")))
        elif folder != models_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise LrmscopeError(f"models folder {folder} {what}; pass a folder of .gguf files")
    return entries


def describe_machine() -> dict[str, str]:
    gpu = gpu_offload_supported()
    amx = cpu_has_amx()
    return {
        "llama.cpp": f"llama-cpp-python {llama_cpp.__version__}, "
        + ("GPU offload built in" if gpu else "CPU-only build"),
        "device": "GPU (all layers offloaded; --cpu to avoid)" if gpu else "CPU",
        "threads": default_choice().describe(),
        "weight repacking": (
            "off: this CPU has AMX, whose repacking crashes (--extra-bufts to force)"
        )
        if amx
        else "on (--no-extra-bufts to disable)",
        "models folder": str(models_dir()),
    }
