"""Training on the rulebook kefuqa inspects with: a question bank (choice, true/false, rewrite items graded
by the rulebook), branching scenario practice scored like a real call, and authoring lint.

    from kefuqa.training import load_bank, Session, grade
    bank, errors = load_bank()                       # bundled data + a company's files
    s = Session(bank.scenarios["grid-01"], kefuqa.checker_for())
    step = s.reply("您好，……")                       # feedback, the customer's next line
    s.report()                                       # the practice call scored like a real one
"""

from __future__ import annotations

from .grading import MAX_REPLY, Feedback, ReplyError, clean_reply, grade, parse_answer
from .lint import lint_bank
from .loader import Bank, load_bank
from .scenario import ScenarioError, Session, Step, play
from .schema import Module, Question, Scenario

__all__ = ["MAX_REPLY", "Bank", "Feedback", "Module", "Question", "ReplyError", "Scenario", "ScenarioError",
           "Session", "Step", "clean_reply", "grade", "lint_bank", "load_bank", "parse_answer", "play"]
