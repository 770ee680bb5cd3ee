"""Datasets where Hugging Face users keep them: `--dataset hf:NAME[:CONFIG][:SPLIT]` reads a hub
dataset from the local cache, and `hf:FOLDER[:SPLIT]` one saved with `save_to_disk`, through the
`datasets` library, never over the network (nothing downloads at run time: the library is put in
offline mode before it is imported).

The split, when not named: test, else train, else the only one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrmscope.errors import LrmscopeError

PREFIX = "hf:"
PREFERRED_SPLITS = ("test", "train")


@dataclass(frozen=True)
class HubRows:
    """A dataset's columns, its rows (read as they are iterated) and what names it."""

    name: str  # the dataset's name, without its owner: what runs show
    columns: list[str]
    rows: Iterator[dict[str, Any]]
    fingerprint: str  # the datasets library's fingerprint of the split: a resume sees the same


def is_hub(spec: str) -> bool:
    return spec.startswith(PREFIX)


def read(spec: str) -> HubRows:
    """The rows of `hf:NAME[:CONFIG][:SPLIT]` (cached) or `hf:FOLDER[:SPLIT]` (saved to disk)."""
    parts = spec.removeprefix(PREFIX).split(":")
    name = parts[0]
    if not name:
        raise LrmscopeError(f"{spec!r} names no dataset: hf:NAME[:CONFIG][:SPLIT] or hf:FOLDER")
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import datasets
    except ImportError:
        raise LrmscopeError(
            "reading hf: datasets needs the datasets package: pip install 'lrmscope[hf]'"
        ) from None
    datasets.disable_progress_bars()  # lrmscope shows its own; theirs would break the one line
    folder = Path(name).expanduser()
    if folder.is_dir():
        if len(parts) > 2:
            raise LrmscopeError(f"{spec!r}: a saved folder takes a split only: hf:FOLDER[:SPLIT]")
        try:
            found = datasets.load_from_disk(str(folder))
        except (FileNotFoundError, ValueError) as exc:
            raise LrmscopeError(
                f"{folder} is not a dataset saved with save_to_disk ({exc})"
            ) from None
        split, shown = (parts[1] if len(parts) > 1 else None), folder.name
    else:
        config = parts[1] or None if len(parts) > 1 else None
        split, shown = (parts[2] if len(parts) > 2 else None), name.rsplit("/", 1)[-1]
        try:
            found = datasets.load_dataset(name, config)
        except Exception as exc:  # noqa: BLE001 - offline, the library says "not cached" many ways
            raise LrmscopeError(
                f"dataset {name}{f' ({config})' if config else ''} is not in the Hugging Face "
                f"cache ({type(exc).__name__}); where a hub is reachable, download it once with "
                f"python -c \"import datasets; datasets.load_dataset('{name}'"
                f'{f", {config!r}" if config else ""})", or pass a folder saved with save_to_disk'
            ) from None
    table = _split(found, split, spec)
    return HubRows(shown, list(table.column_names), iter(table), table._fingerprint)


def _split(found, split: str | None, spec: str):
    """One split of a DatasetDict (named, or the preferred one), or the Dataset itself."""
    if not hasattr(found, "keys"):  # a Dataset: one split already
        if split is not None:
            raise LrmscopeError(f"{spec!r}: the saved dataset has no splits to choose from")
        return found
    names = list(found.keys())
    if split is None:
        split = next(
            (s for s in PREFERRED_SPLITS if s in names), names[0] if len(names) == 1 else None
        )
    if split not in names:
        raise LrmscopeError(
            f"{spec!r}: name a split, one of {', '.join(names)} (hf:NAME[:CONFIG][:SPLIT])"
        )
    return found[split]
