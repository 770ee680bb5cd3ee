"""Safety judges behind one protocol (docs/study.md "Judges"), registered by name in `registry`
and built from command-line names such as `rs-match`, `llama-guard=PATH` or `openai-moderation`."""

from lrmscope.engine.judges.base import Judge, JudgeError, Verdict
from lrmscope.engine.judges.registry import JUDGES, JudgeOptions, build_judge, register_judge

__all__ = [
    "JUDGES",
    "Judge",
    "JudgeError",
    "JudgeOptions",
    "Verdict",
    "build_judge",
    "register_judge",
]
