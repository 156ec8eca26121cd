"""The ``math-steps`` builder: arithmetic chains solved in two to four written steps, each answer checked.

math-answers' answers are one sentence with one number, so a reward read along the answer has little "future"
to look at. Here every answer is a trajectory: the question is a left-to-right chain ("What is 8 * 6 + 16 - 3?"),
the embedded LM is made to start writing "Step 1: 8 * 6 =" and continues with one step per line. The answer is
the result of its last step; a wrong early step almost always dooms it, and ``first_wrong_step`` records where
the chain first went wrong. This is the task on which the goal-conditioned RM's per-token Q-values (Nath et al.)
have something to track.

Splits as in math-answers: questions (not samples) split into train and test, and a ``shifted`` split that
answers the test questions again under a system prompt and a higher temperature. Pairs are (correct, incorrect)
answers to the same question in TRL's prompt/chosen/rejected format. The rows for the default settings ship with
the package (gzip); any other setting is generated and cached.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from rewardlab.data.math_answers import MathAnswersConfig, MathTask

SHIPPED = Path(__file__).parent / "shipped" / "math_steps_samples.jsonl.gz"
SHIPPED_SHIFTED = Path(__file__).parent / "shipped" / "math_steps_shifted.jsonl.gz"
SHIFTED_SYSTEM = "You are a careful maths teacher. Show your working clearly."
_RESULT = re.compile(r"=\s*(-?\d+)")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@dataclass(frozen=True)
class MathStepsConfig(MathAnswersConfig):
    """math-answers' settings (the same fields, the same cache keys) with this task's defaults."""

    n_questions: int = 320
    samples_per_question: int = 12  # the model is right ~10% of the time: 12 samples give many questions a correct one
    max_new_tokens: int = 56
    shifted_system: str | None = SHIFTED_SYSTEM


def make_questions(n: int, seed: int) -> list[dict]:
    """Chains of 2-4 operations, evaluated left to right (a product, if any, comes first, so the usual precedence
    gives the same value): the first step is a product of 2..9 or a sum of 1..9, then additions and subtractions
    of 1..9 (larger numbers left the 135M model under 3% correct). Each question carries its intended step results (``chain``) and the prefix the answer starts with."""
    rng = random.Random(seed)
    out = []
    for qid in range(n):
        n_steps = rng.choice([2, 2, 3, 3, 4])  # 4-step chains are rarely right, but they are the long trajectories
        if rng.random() < 0.5:
            terms, ops = [rng.randint(2, 9), rng.randint(2, 9)], ["*"]
        else:
            terms, ops = [rng.randint(1, 9), rng.randint(1, 9)], ["+"]
        for _ in range(n_steps - 1):
            ops.append(rng.choice("+-"))
            terms.append(rng.randint(1, 9))
        chain, value = [], terms[0]
        for op, term in zip(ops, terms[1:]):
            value = _OPS[op](value, term)
            chain.append(value)
        expr = " ".join([str(terms[0])] + [f"{op} {t}" for op, t in zip(ops, terms[1:])])
        out.append({"qid": qid, "question": f"What is {expr}? Work it out step by step.", "answer": value, "chain": chain,
                    "prefix": f"Step 1: {terms[0]} {ops[0]} {terms[1]} ="})
    return out


def step_result(line: str) -> int | None:
    found = _RESULT.search(line)
    return int(found.group(1)) if found else None


def clean_steps(text: str, max_steps: int) -> list[str]:
    """The answer's step lines: consecutive lines starting with "Step" (blank lines skipped), at most ``max_steps``,
    each cut after the number its first "=" states. The first other line ends the answer (the model's rambling)."""
    kept = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if not line.lower().startswith("step"):
            break
        found = _RESULT.search(line)
        kept.append(line[: found.end()] if found else line)
        if len(kept) == max_steps:
            break
    return kept


def finish(q: dict, text: str) -> dict:
    """Row fields from the prefix plus the model's continuation. ``stated``: the result of the last step;
    ``first_wrong_step``: the first step (1-based) whose result is not the chain's value there, None if none is."""
    steps = clean_steps(q["prefix"] + text, len(q["chain"]))
    results = [step_result(s) for s in steps]
    stated = results[-1] if results else None
    wrong = next((k + 1 for k, (got, want) in enumerate(zip(results, q["chain"])) if got != want), None)
    if wrong is None and len(results) < len(q["chain"]) and stated != q["answer"]:
        wrong = len(results) + 1  # stopped early, with every step so far right
    return {"response": "\n".join(steps), "answer": q["answer"], "stated": None if stated is None else float(stated),
            "correct": stated is not None and stated == q["answer"], "n_steps": len(q["chain"]), "first_wrong_step": wrong}


_CHAIN = re.compile(r"What is (-?\d+(?: [-+*] -?\d+)+)\?")


def canonical_answer(question: str) -> str:
    """The chain written out correctly, one step per line ("Step 1: 8 * 6 = 48\nStep 2: 48 + 16 = 64")."""
    found = _CHAIN.search(question)
    if not found:
        raise ValueError(f"not a math-steps question: {question!r}")
    tokens = found.group(1).split()
    value, lines = int(tokens[0]), []
    for k in range(1, len(tokens), 2):
        op, term = tokens[k], int(tokens[k + 1])
        new = _OPS[op](value, term)
        lines.append(f"Step {len(lines) + 1}: {value} {op} {term} = {new}")
        value = new
    return "\n".join(lines)


TASK = MathTask("math-steps", MathStepsConfig, make_questions, finish, SHIPPED, SHIPPED_SHIFTED)


def generate_samples(cfg: MathStepsConfig) -> list[dict]:
    return TASK.generate(cfg)


def build(cfg: MathStepsConfig = MathStepsConfig(), regenerate: bool = False, shifted: bool = True) -> dict[str, list[dict]]:
    """The rows (see ``math_answers.MathTask.build``)."""
    return TASK.build(cfg, regenerate, shifted)
