"""Judge names as the command line spells them: `NAME` or `NAME=ARGUMENT`."""

from __future__ import annotations

from dataclasses import dataclass

from lrmscope.engine.judges.base import Judge, check_truncation
from lrmscope.errors import LrmscopeError


@dataclass(frozen=True)
class JudgeOptions:
    """Settings shared by the judges that need them."""

    device: str | None = None  # transformers judges: cpu, cuda, cuda:N (default: auto)
    base_url: str | None = None  # openai-moderation
    timeout_s: float = 30.0
    max_retries: int = 4
    max_text_tokens: int | None = None  # transformers judges: cut longer texts to N tokens
    # transformers judges: which tokens of a longer text are kept: first (HarmBench's), last, none
    truncation: str = "first"


@dataclass(frozen=True)
class JudgeInfo:
    argument: str
    summary: str


JUDGES: dict[str, JudgeInfo] = {
    "rs-match": JudgeInfo(
        "[=SET]",
        "refusal string matching; SET: safechain (default), advbench, advbench-short; "
        "version: the set's",
    ),
    "llama-guard": JudgeInfo(
        "=MODEL",
        "Llama Guard 3 (8B or 1B) via transformers; MODEL: a local folder (or a hub id online); "
        "version: model fingerprint and dtype",
    ),
    "llama-guard-gguf": JudgeInfo(
        "=FILE.gguf", "Llama Guard 3 as a GGUF, via llama.cpp; version: file fingerprint"
    ),
    "harmbench": JudgeInfo(
        "=MODEL",
        "HarmBench-Llama-2-13b-cls via transformers; MODEL: a local folder; "
        "version: model fingerprint and dtype",
    ),
    "openai-moderation": JudgeInfo(
        "[=MODEL]",
        "OpenAI Moderation API (default omni-moderation-latest); key in OPENAI_API_KEY; "
        "version: the model name (the served model is kept with each verdict)",
    ),
}


def build_judge(spec: str, options: JudgeOptions | None = None) -> Judge:
    options = options or JudgeOptions()
    check_truncation(options.truncation)
    name, _, argument = spec.strip().partition("=")
    if name not in JUDGES:
        raise LrmscopeError(f"unknown judge {name!r}: choose one of {', '.join(JUDGES)}")
    needs_argument = JUDGES[name].argument.startswith("=")
    if needs_argument and not argument:
        raise LrmscopeError(f"judge {name} needs a model: --judge {name}{JUDGES[name].argument}")
    if name == "rs-match":
        from lrmscope.engine.judges.rsmatch import RSMatch

        return RSMatch(argument or "safechain")
    if name == "openai-moderation":
        from lrmscope.engine.judges.moderation import OpenAIModeration

        return OpenAIModeration(
            model=argument or None,
            base_url=options.base_url,
            timeout_s=options.timeout_s,
            max_retries=options.max_retries,
        )
    if name == "llama-guard-gguf":
        from lrmscope.engine.judges.guard_gguf import LlamaGuardGGUF
        from lrmscope.engine.llama import LlamaSettings
        from lrmscope.engine.models import check_gguf

        if options.device not in (None, "cpu") and not options.device.startswith("cuda"):
            raise LrmscopeError(f"unknown judge device {options.device!r}: use cpu or cuda")
        check_gguf(argument, "the llama-guard-gguf=FILE path")
        return LlamaGuardGGUF(
            argument, LlamaSettings(cpu=options.device == "cpu"), truncation=options.truncation
        )
    from lrmscope.engine.judges import hf

    cls = hf.LlamaGuardHF if name == "llama-guard" else hf.HarmBenchHF
    return cls(
        argument,
        device=options.device,
        max_text_tokens=options.max_text_tokens,
        truncation=options.truncation,
    )
