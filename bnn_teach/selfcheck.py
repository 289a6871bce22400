"""The lectures' "check yourself" cells: immediate feedback on a student's answer, no grading.

A lecture computes the right value itself (so no number is typed in), asks the student for theirs,
and names the typical mistakes it can recognise::

    >>> from bnn_teach import selfcheck
    >>> result = selfcheck.number(0.7, expected=0.693, rtol=0.05,
    ...                           mistakes={1.0: "that is log2(2): the course measures entropy in nats"})
    right: 0.7 (expected 0.693)
    >>> bool(result)
    True
    >>> _ = selfcheck.number(1.0, expected=0.693, rtol=0.05,
    ...                      mistakes={1.0: "that is log2(2): the course measures entropy in nats"})
    not yet: 1 — that is log2(2): the course measures entropy in nats

Graded work lives in the assignments (nbgrader); these checks only print.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

__all__ = ["number", "choice"]  # both return a Feedback


@dataclass
class Feedback:
    """What a check said: ``right`` (also the truth value of the object) and the ``message`` printed."""

    right: bool
    message: str

    def __bool__(self):
        return self.right

    def __repr__(self):
        return f"Feedback(right={self.right}, message={self.message!r})"

    def _ipython_display_(self):
        """In a notebook the message is already printed: a check cell shows it once, not the object too."""


def _as_float(value, name):
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be one number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def _report(right: bool, message: str) -> Feedback:
    print(message)
    return Feedback(right, message)


def number(answer, expected, rtol: float = 1e-2, atol: float = 1e-8, mistakes: dict | None = None,
           hint: str = "") -> Feedback:
    """Is ``answer`` within ``rtol`` (relative) or ``atol`` of ``expected``? Prints the verdict.

    ``mistakes`` maps typical wrong values to what they reveal (matched with the same tolerance);
    ``hint`` is printed for any other wrong answer. ``None`` (an unanswered cell) is not an error.
    """
    expected = _as_float(expected, "expected")
    if answer is None:
        return _report(False, "no answer yet: replace None by your value and run the cell again")
    answer = _as_float(answer, "your answer")
    if not math.isfinite(answer):
        return _report(False, f"not yet: {answer} is not a finite number")

    def close(a, b):
        return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)

    if close(answer, expected):
        return _report(True, f"right: {answer:.4g} (expected {expected:.4g})")
    for value, meaning in (mistakes or {}).items():
        if close(answer, _as_float(value, "a mistake's value")):
            return _report(False, f"not yet: {answer:.4g} — {meaning}")
    return _report(False, f"not yet: {answer:.4g}" + (f" — {hint}" if hint else ""))


def choice(answer, expected, options, explanations: dict | None = None) -> Feedback:
    """A multiple-choice check: ``answer`` must be one of ``options``; ``explanations`` says why a wrong
    option is wrong (or why the right one is right)."""
    options = list(options)
    if expected not in options:
        raise ValueError(f"expected {expected!r} is not one of the options {options}")
    if answer is None:
        return _report(False, f"no answer yet: set it to one of {options} and run the cell again")
    if answer not in options:
        return _report(False, f"not yet: {answer!r} is not one of {options}")
    why = (explanations or {}).get(answer, "")
    if answer == expected:
        return _report(True, f"right: {answer!r}" + (f" — {why}" if why else ""))
    return _report(False, f"not yet: {answer!r}" + (f" — {why}" if why else ""))
