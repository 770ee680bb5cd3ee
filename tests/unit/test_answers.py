r"""Reasoning accuracy: answers are read from the answer part only, extracted (boxes, "the answer
is", choice letters, the last number), normalized (exact numbers, choices, canonical text) and
checked against a dataset's reference field."""

from fractions import Fraction

import pytest

from lrmscope.engine.answers import (
    answer_part,
    check,
    extract_answer,
    normalize,
    reference_answer,
)
from lrmscope.engine.trace import parse_trace

GSM8K_FIELD = (
    "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18"
)
MATH_SOLUTION = r"We have $x + 2 = 7$, so $x = \boxed{5}$."

# (id, answer part, reference field, outcome)
CASES = [
    ("box", r"So the total is \boxed{42}.", "42", "correct"),
    ("box-nested-frac-vs-decimal", r"\boxed{\frac{1}{2}}", "0.5", "correct"),
    (
        "box-nested-braces",
        r"$\boxed{\left(\frac{1}{2}, \sqrt{3}\right)}$",
        r"(\frac12,\sqrt3)",
        "correct",
    ),
    ("box-in-box", r"\boxed{\boxed{7}}", "7", "correct"),
    ("several-boxes-last-wins", r"First \boxed{3}, then corrected: \boxed{5}", "5", "correct"),
    ("several-boxes-first-loses", r"First \boxed{3}, then corrected: \boxed{5}", "3", "wrong"),
    ("unclosed-last-box-skipped", r"\boxed{3} but maybe \boxed{5", "3", "correct"),
    ("fbox", r"\fbox{12} cookies for 3 friends", "12", "correct"),
    ("box-beats-phrase", r"The answer is 4. Rechecking: \boxed{6}", "6", "correct"),
    ("dfrac-vs-decimal", r"\boxed{\dfrac{3}{4}}", "0.75", "correct"),
    ("frac-shorthand-vs-slash", r"\boxed{\frac34}", "3/4", "correct"),
    ("tfrac-negative", r"\boxed{-\tfrac{1}{2}}", "-0.5", "correct"),
    ("frac-negative-numerator", r"\boxed{\frac{-1}{2}}", "-1/2", "correct"),
    ("unreduced-fraction", r"\boxed{\frac{2}{4}}", "1/2", "correct"),
    ("unreduced-slash", "The answer is 6/12.", "0.5", "correct"),
    ("displaystyle", r"$\boxed{\displaystyle \frac{1}{2}}$", "1/2", "correct"),
    ("slash-vs-frac", "The answer is 1/2.", r"\frac{1}{2}", "correct"),
    ("decimal-is-not-a-third", "The answer is 0.33", "1/3", "wrong"),
    ("trailing-zeros", r"\boxed{2.50}", "5/2", "correct"),
    ("zero-denominator-is-text", r"\boxed{1/0}", "0", "wrong"),
    ("gsm8k-reference", "She pays $18 a day.\n\nThe answer is 18.", GSM8K_FIELD, "correct"),
    ("gsm8k-rationale-number", "The answer is 9.", GSM8K_FIELD, "wrong"),
    ("math-solution-reference", r"\boxed{5}", MATH_SOLUTION, "correct"),
    ("thousands-comma", "The answer is 1,000.", "1000", "correct"),
    ("thousands-in-reference", r"\boxed{1000}", "#### 1,000", "correct"),
    ("millions-last-number", "a total of 1,234,567 votes", "1234567", "correct"),
    ("latex-thousands", r"\boxed{1{,}000}", "1000", "correct"),
    ("latex-thin-space", r"\boxed{1\,000}", "1000", "correct"),
    ("list-is-not-thousands", r"\boxed{1,2}", "12", "wrong"),
    ("negative", "The answer is -3.", "-3", "correct"),
    ("sign-matters", "The answer is 3.", "-3", "wrong"),
    ("explicit-plus", r"\boxed{+5}", "5", "correct"),
    ("unicode-minus", "The answer is −3", "-3", "correct"),
    ("negative-last-number", "The temperature drops to -3 degrees", "-3", "correct"),
    ("unit-word", "The answer is 12 apples.", "12", "correct"),
    ("unit-text", r"\boxed{5 \text{ cm}}", "5", "correct"),
    ("unit-text-no-space", r"\boxed{5\text{cm}}", "5", "correct"),
    ("unit-squared", r"\boxed{25 \text{ cm}^2}", "25", "correct"),
    ("unit-per", "The answer is 3 km/h.", "3", "correct"),
    ("latex-space-before-unit", r"\boxed{3\ \mathrm{m}}", "3", "correct"),
    ("variable-is-not-a-unit", r"\boxed{2x}", "2", "wrong"),
    ("dollars", r"The answer is \$18.00", "18", "correct"),
    ("clause-after-answer", "The answer is 18 dollars, because she sells 9 eggs.", "18", "correct"),
    ("percent-dropped", "The answer is 25%.", "25", "correct"),
    ("percent-is-not-a-ratio", r"\boxed{25\%}", "0.25", "wrong"),
    ("degrees", r"\boxed{90^\circ}", "90", "correct"),
    ("assignment", r"\boxed{x = 5}", "5", "correct"),
    ("text-answer", r"The answer is \text{Tuesday}.", "tuesday", "correct"),
    ("sqrt-kept", r"\boxed{2\sqrt{3}}", r"2 \sqrt3", "correct"),
    ("sqrt-not-evaluated", r"\boxed{\sqrt{2}}", "1.4142", "wrong"),
    ("sqrt-unicode", "The answer is √2", r"\sqrt{2}", "correct"),
    ("interval", r"\boxed{\left[ 1, 2 \right)}", "[1,2)", "correct"),
    ("tuple-in-phrase", "The answer is (1, 2), as shown.", "(1,2)", "correct"),
    ("choice-parenthesized", "I pick (B) because it is larger.", "B", "correct"),
    ("choice-answer-colon", "Answer: C", "C", "correct"),
    ("choice-lone-bold", "**D**", "D", "correct"),
    ("choice-with-option-text", "The answer is (B) 42.", "(B)", "correct"),
    ("choice-wrong-letter", "The answer is (A) 42.", "B", "wrong"),
    ("choice-boxed-nested-text", r"\boxed{\textbf{\text{(E)}}}", "E", "correct"),
    ("bold-final-answer", "**Final Answer:** 42", "42", "correct"),
    ("bold-number", "The answer is **42**.", "42", "correct"),
    ("box-trailing-period", r"\boxed{18.}", "18", "correct"),
    ("later-phrase-wins", "The answer is 5. Wait, no: the answer is 6.", "6", "correct"),
    ("answer-isnt-not-a-phrase", "The answer isn't 5; it is 6.", "6", "correct"),
    ("last-number", "After 3 steps we get 15 cookies", "15", "correct"),
    ("earlier-number-loses", "After 3 steps we get 15 cookies", "3", "wrong"),
    ("no-answer", "I cannot solve this problem.", "42", "no answer"),
    ("empty-answer-part", "", "42", "no answer"),
    ("unclosed-thought", None, "42", "unclosed"),
]


@pytest.mark.parametrize(
    "answer, reference, outcome", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_verdicts(answer, reference, outcome):
    result = check(answer, reference)
    assert result.outcome == outcome, result
    assert result.correct == (outcome == "correct")


EXTRACTIONS = [
    ("nested", r"\boxed{\frac{1}{\sqrt{2}}}", r"\frac{1}{\sqrt{2}}"),
    ("empty-box-skipped", r"\boxed{} so 7", "7"),
    ("stray-closing-brace", r"f(x)} = 3, so \boxed{4}", "4"),
    ("phrase-to-end-of-sentence", r"The final answer is: $\frac{1}{2}$. Done.", r"$\frac{1}{2}$"),
    ("minus-after-digit-is-not-a-sign", "We compute 10-3", "3"),
    ("minus-after-space-is-a-sign", "from 5 to -3", "-3"),
    ("last-frac", r"so it is \frac{3}{4} of it", r"\frac{3}{4}"),
    ("last-frac-shorthand", r"so it is \frac34", r"\frac34"),
    ("lone-letter", "(C)", "C"),
    ("prose-article-is-not-a-choice", "A cat sat.", None),
    ("nothing", "nothing here", None),
]


@pytest.mark.parametrize(
    "text, expected", [e[1:] for e in EXTRACTIONS], ids=[e[0] for e in EXTRACTIONS]
)
def test_extraction(text, expected):
    assert extract_answer(text) == expected


def test_equal_numbers_normalize_alike():
    forms = ["1/2", "0.5", ".5", r"\frac{1}{2}", r"\dfrac12", r"\frac{2}{4}", "$0.50$", "1 / 2"]
    assert {normalize(form) for form in forms} == {normalize("0.5")}
    assert normalize("0.5").value == Fraction(1, 2)
    assert normalize("0.5") != normalize("0.51")


@pytest.mark.parametrize(
    "field, expected",
    [
        (GSM8K_FIELD, "18"),
        ("42", "42"),
        (MATH_SOLUTION, "5"),
        ("  #### 1,000 ", "1,000"),
        ("#### 3\n#### 4", "4"),
    ],
    ids=["gsm8k", "plain", "math-solution", "thousands", "last-marker"],
)
def test_reference_answer(field, expected):
    assert reference_answer(field) == expected


def test_only_the_answer_part_counts():
    """The caller passes `answer_part(trace)`: an answer written only in the thought is none, and
    an unclosed thought has no answer part at all."""
    in_thought = parse_trace(r"<think>The answer is \boxed{42}.</think>I am not sure.")
    assert (
        check(answer_part(in_thought.answer, in_thought.think_closed), "42").outcome == "no answer"
    )
    unclosed = parse_trace("<think>So the answer is 42, surely")
    assert answer_part(unclosed.answer, unclosed.think_closed) is None
    assert check(answer_part(unclosed.answer, unclosed.think_closed), "42").outcome == "unclosed"
    answered = parse_trace("<think>Maybe 41.</think>\n\nThe answer is 42.")
    assert check(answer_part(answered.answer, answered.think_closed), "42").outcome == "correct"


def test_degenerate_answer_parts():
    """Looping generations: many unclosed boxes are read in one pass, and a number with more
    digits than Python converts is text, not an error."""
    assert check(r"\boxed{" * 20000, "5").outcome == "no answer"
    assert check("The answer is " + "1" * 5000, "1").outcome == "wrong"
