"""The public Python API: one import for a script that generates under a decoding mode, saves
what it generates and judges it. README.md "From Python" is its example (tests/engine/test_api.py
runs it); the names below are the supported ones, wherever they live inside the package."""

from __future__ import annotations

import os

from lrmscope.core.generate import SampleRef, record, start_sample
from lrmscope.engine.backend import Backend, Message
from lrmscope.engine.events import (
    AnswerDelta,
    Event,
    Finished,
    Injected,
    Span,
    Stats,
    ThinkDelta,
    Trace,
)
from lrmscope.engine.generation import Generation
from lrmscope.engine.judges import Judge, JudgeOptions, Verdict, build_judge
from lrmscope.engine.llama import LlamaBackend, LlamaSettings
from lrmscope.engine.models import embedded_model_path
from lrmscope.engine.modes import ModeCatalog
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.settings import CustomMode, Mode, ModeSettings, SamplerSettings
from lrmscope.engine.trace import judged_texts
from lrmscope.errors import LrmscopeError
from lrmscope.store import Store


def load_model(
    path: str | os.PathLike[str] | None = None, settings: LlamaSettings | None = None
) -> LlamaBackend:
    """A GGUF model in llama.cpp: the file at `path`, or the embedded SmolLM2-135M when None."""
    return LlamaBackend(embedded_model_path() if path is None else path, settings)


__all__ = [
    "AnswerDelta",
    "Backend",
    "CustomMode",
    "Event",
    "Finished",
    "Generation",
    "Injected",
    "Judge",
    "JudgeOptions",
    "LlamaBackend",
    "LlamaSettings",
    "LrmscopeError",
    "Message",
    "Mode",
    "ModeCatalog",
    "ModeSettings",
    "SampleRef",
    "SamplerSettings",
    "Span",
    "Stats",
    "Store",
    "ThinkDelta",
    "Trace",
    "Verdict",
    "build_judge",
    "judged_texts",
    "load_model",
    "record",
    "start_sample",
    "with_think_opener",
]
