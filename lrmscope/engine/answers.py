r"""Reasoning accuracy: the final answer of a sample, normalized and checked against a reference.

Only the answer part of a trace is read, never the thought: callers pass `answer_part(answer,
think_closed)`, which is None when the thought never closed. Such a sample has no answer and
counts as wrong; its outcome, "unclosed", lets a report count overthinking apart from wrong
answers.

`normalize` makes an answer one of three kinds, compared exactly:

- number: a `Fraction`, so `1/2`, `0.5`, `\frac{1}{2}` and `\dfrac12` are equal, and `0.33` is
  not `1/3`. Thousands commas (`1,000`, `1{,}000`), signs, `$`, `^\circ` and `%` are dropped
  (`25%` equals `25`, as GSM8K writes percents, and not `0.25`). Words after a space are a unit
  and dropped (`12 apples`, `5 \text{cm}`, `3 km/h`, `25 cm^2`), but `2x` is not a number.
- choice: a letter A to J alone or as an option label (`B`, `(B)`, `B.`, `(B) 42`).
- text: anything else, without spaces and in lower case (`\sqrt{2}`, `(1,2)`, `tuesday`), after
  `\text{}`, `\left`/`\right`, `x =` and LaTeX spacing are removed and `\frac12`, `\sqrt2` and
  `√2` are braced; nothing irrational is evaluated (`\sqrt{2}` is not `1.4142`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

Kind = Literal["number", "choice", "text"]
Outcome = Literal["correct", "wrong", "no answer", "unclosed"]
# The version of these rules, saved with every check: a change to them checks saved samples anew.
CHECKER = "1"


@dataclass(frozen=True)
class Normalized:
    """An answer in the form answers are compared in: equal values are the same answer."""

    kind: Kind
    value: Fraction | str

    @property
    def key(self) -> str:
        """As text, one per answer: what Maj@K counts votes by."""
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class Check:
    """One answer part checked against one reference; `extracted` and `answer` are None when
    there was no answer ("no answer", "unclosed")."""

    extracted: str | None
    answer: Normalized | None
    reference: Normalized
    outcome: Outcome

    @property
    def correct(self) -> bool:
        return self.outcome == "correct"


_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
# What comes before X in "The answer is X", "Final answer: X", "**Answer:** X".
_PHRASE = re.compile(r"\banswer\b[*_\s]*(?:is\b|:)[\s:]*", re.IGNORECASE)
_LONE_CHOICE = re.compile(r"[\s*$(]*([A-J])[\s*$).]*")
_PAREN_CHOICE = re.compile(r"\(([A-J])\)")
_FRAC_ARG = r"(?:\{[^{}]*\}|\d)"
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
# A minus is a sign unless it follows a word or a bracket (`10-3` is 10 minus 3).
_ANY_NUMBER = re.compile(
    rf"(?:(?<![\w)}}])-)?(?:\\[dt]?frac{_FRAC_ARG}{_FRAC_ARG}|(?:{_NUM})(?:/(?:{_NUM}))?)"
)

_UNWRAP = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_DROP = re.compile(
    r"\\left(?![a-zA-Z])|\\right(?![a-zA-Z])|\\displaystyle|\\[!,]|\\?\$|\\?%"
    r"|\^\s*\{?\\circ\}?|°"
)
_SPACE = re.compile(r"\\(?:[;: ]|q?quad(?![a-zA-Z]))")
_FRAC_ARGS = re.compile(r"\\frac\s*(\{[^{}]*\}|\w)\s*(\{[^{}]*\}|\w)")
_SQRT_ARG = re.compile(r"\\sqrt\s*(\w)|√(\w+)")
_ASSIGN = re.compile(r"^[a-zA-Z]\s*=\s*")
_CHOICE = re.compile(r"\(?([A-J])(?:\)?[.:]?|[.):]\s.*)")
_SNUM = rf"[-+]?(?:{_NUM})"
_NUMBER = re.compile(
    rf"(?P<sign>[-+]?)\s*(?:\\frac\{{\s*(?P<top>{_SNUM})\s*\}}\{{\s*(?P<bottom>{_SNUM})\s*\}}"
    rf"|(?P<num>{_NUM})(?:\s*/\s*(?P<den>{_NUM}))?)"
)
_UNIT = re.compile(r"\s+[a-zA-Z][a-zA-Z\s./'-]*(?:\^\{?[23]\}?[a-zA-Z\s./'-]*)?")


def answer_part(answer: str | None, think_closed: bool) -> str | None:
    """The text answers are read from: a trace's (or saved sample's) answer after a closed
    thought, else None."""
    return answer if think_closed else None


def _last_box(text: str) -> str | None:
    """The content of the last closed, non-empty `\\boxed{}` or `\\fbox{}` (in a box in a box,
    the inner one). One pass over the braces, so that unclosed boxes cost no more than closed."""
    box_starts = {m.end() for m in _BOX.finditer(text)}
    opened: list[int | None] = []  # per open brace: where a box's content starts, or None
    last: tuple[int, str] | None = None
    for i, char in enumerate(text):
        if char == "{":
            opened.append(i + 1 if i + 1 in box_starts else None)
        elif char == "}" and opened:
            start = opened.pop()
            if start is not None and (last is None or start > last[0]) and text[start:i].strip():
                last = (start, text[start:i].strip())
    return last[1] if last else None


def _first_clause(text: str) -> str:
    """text up to its first `. `, `, ` or `; ` outside brackets (so `(1, 2)` and `1,000` stay
    whole), without markdown emphasis around it."""
    depth = 0
    for i, (char, after) in enumerate(zip(text, text[1:] + " ")):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif char in ".,;" and after.isspace() and depth == 0:
            text = text[:i]
            break
    return text.strip(" *_")


def reference_answer(field: str) -> str:
    """A dataset's reference field reduced to its answer: the text after the last `####` (GSM8K
    writes its rationale before it), else the last box (a MATH solution), else the whole field."""
    if "####" in field:
        return field.rsplit("####", 1)[1].strip()
    box = _last_box(field)
    return box if box is not None else field.strip()


def extract_answer(answer_text: str) -> str | None:
    """The final answer in the answer part of a trace (never pass the thought), or None.

    The first rule that finds one wins: the last box; the last "answer is X" or "answer: X" (X up
    to the end of its clause); the whole text as a choice letter, or the last "(B)"; the last
    number (a plain number, `a/b` or `\\frac{a}{b}`)."""
    box = _last_box(answer_text)
    if box is not None:
        return box
    for m in reversed(list(_PHRASE.finditer(answer_text))):
        end = answer_text.find("\n", m.end())
        if clause := _first_clause(answer_text[m.end() : None if end < 0 else end]):
            return clause
    if lone := _LONE_CHOICE.fullmatch(answer_text):
        return lone[1]
    letters = _PAREN_CHOICE.findall(answer_text)
    if letters:
        return letters[-1]
    numbers = _ANY_NUMBER.findall(answer_text.replace("−", "-"))
    return numbers[-1] if numbers else None


def _clean(text: str) -> str:
    """text without the markup and LaTeX its value does not depend on, in one spelling."""
    text = text.replace("−", "-").replace("{,}", ",")
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    while (unwrapped := _UNWRAP.sub(r" \1", text)) != text:
        text = unwrapped
    text = _SPACE.sub(" ", _DROP.sub("", text))
    text = _FRAC_ARGS.sub(lambda m: r"\frac" + _brace(m[1]) + _brace(m[2]), text)
    text = _SQRT_ARG.sub(lambda m: r"\sqrt" + _brace(m[1] or m[2]), text)
    text = _ASSIGN.sub("", " ".join(text.split()))
    return text.rstrip(".").strip()


def _brace(argument: str) -> str:
    return argument if argument.startswith("{") else "{" + argument + "}"


def _number(text: str) -> Fraction | None:
    """The exact value of a number, `a/b` or `\\frac{a}{b}`, with an optional unit after it."""
    m = _NUMBER.match(text)
    if m is None or not (m.end() == len(text) or _UNIT.fullmatch(text, m.end())):
        return None
    try:
        top = Fraction((m["top"] or m["num"]).replace(",", ""))
        bottom = Fraction((m["bottom"] or m["den"] or "1").replace(",", ""))
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return None
    if bottom == 0:
        return None
    return -top / bottom if m["sign"] == "-" else top / bottom


def normalize(text: str) -> Normalized:
    """An answer (extracted, or a reference) as a number, a choice letter or a canonical text."""
    cleaned = _clean(text)
    if choice := _CHOICE.fullmatch(cleaned):
        return Normalized("choice", choice[1])
    number = _number(cleaned)
    if number is not None:
        return Normalized("number", number)
    return Normalized("text", "".join(cleaned.split()).lower())


def check(answer_text: str | None, reference: str) -> Check:
    """Check an answer part (None: the thought never closed) against a reference field."""
    expected = normalize(reference_answer(reference))
    if answer_text is None:
        return Check(None, None, expected, "unclosed")
    extracted = extract_answer(answer_text)
    if extracted is None:
        return Check(None, None, expected, "no answer")
    answer = normalize(extracted)
    return Check(extracted, answer, expected, "correct" if answer == expected else "wrong")
