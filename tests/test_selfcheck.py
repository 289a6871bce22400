"""bnn_teach.selfcheck: a check-yourself cell tells a right answer from a typical wrong one."""
import math

import pytest
import torch

from bnn_teach import selfcheck

LOG2 = math.log(2.0)
MISTAKES = {1.0: "that is log2(2): the course measures entropy in nats"}


@pytest.mark.parametrize("answer", [LOG2, 0.69, torch.tensor(LOG2)])
def test_right_answers_pass(answer, capsys):
    result = selfcheck.number(answer, expected=LOG2, rtol=0.01, mistakes=MISTAKES)
    assert result and result.right
    assert capsys.readouterr().out.startswith("right: 0.69")


def test_a_typical_mistake_is_named(capsys):
    result = selfcheck.number(1.0, expected=LOG2, rtol=0.01, mistakes=MISTAKES)
    assert not result
    assert "nats" in capsys.readouterr().out


def test_other_wrong_answers_get_the_hint_and_no_answer_is_not_an_error(capsys):
    assert not selfcheck.number(0.5, expected=LOG2, hint="entropy of a fair coin")
    assert "fair coin" in capsys.readouterr().out
    assert not selfcheck.number(None, expected=LOG2)
    assert "replace None" in capsys.readouterr().out
    assert not selfcheck.number(float("nan"), expected=LOG2)


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="number"):
        selfcheck.number("0.69", expected=LOG2)
    with pytest.raises(ValueError, match="one number"):
        selfcheck.number(torch.ones(3), expected=LOG2)
    with pytest.raises(ValueError, match="not one of the options"):
        selfcheck.choice("a", expected="z", options=["a", "b"])


def test_choice(capsys):
    options = ["aleatoric", "epistemic"]
    why = {"aleatoric": "more data does not shrink noise in the labels"}
    assert selfcheck.choice("epistemic", "epistemic", options, why)
    assert not selfcheck.choice("aleatoric", "epistemic", options, why)
    assert "more data" in capsys.readouterr().out.splitlines()[-1]
    assert not selfcheck.choice("both", "epistemic", options)
