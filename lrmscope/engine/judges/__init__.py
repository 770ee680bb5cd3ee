"""Safety judges behind one protocol (docs/study.md "Judges"), and the spec parser that builds
them from command-line names such as `rs-match`, `llama-guard=PATH` or `openai-moderation`."""

from lrmscope.engine.judges.base import Judge, JudgeError, Verdict
from lrmscope.engine.judges.registry import JUDGES, build_judge

__all__ = ["JUDGES", "Judge", "JudgeError", "Verdict", "build_judge"]
