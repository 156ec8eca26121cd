"""The math-steps builder: chains solved step by step, labels read from the last step, the first wrong step found."""

from __future__ import annotations

from collections import Counter

import pytest

from rewardlab.data import find_card, load_preferences, TextDataConfig
from rewardlab.data.math_steps import MathStepsConfig, build, canonical_answer, clean_steps, finish, make_questions


def test_questions_are_left_to_right_chains_of_two_to_four_steps():
    questions = make_questions(200, 0)
    assert Counter(len(q["chain"]) for q in questions).keys() == {2, 3, 4}
    for q in questions:
        expr = q["question"].removeprefix("What is ").split("?")[0]
        assert eval(expr) == q["answer"] == q["chain"][-1]  # a product only comes first: precedence agrees
        assert q["prefix"] == f"Step 1: {' '.join(expr.split()[:3])} ="


def test_the_answer_is_the_last_step_and_the_first_wrong_step_is_found():
    q = {"chain": [48, 64, 61], "answer": 61, "prefix": "Step 1: 8 * 6 ="}
    right = finish(q, " 48\n\nStep 2: 48 + 16 = 64\nStep 3: 64 - 3 = 61\nSo the answer is 61. Step 4: ...")
    assert right["response"] == "Step 1: 8 * 6 = 48\nStep 2: 48 + 16 = 64\nStep 3: 64 - 3 = 61"  # rambling cut
    assert right["correct"] and right["stated"] == 61 and right["first_wrong_step"] is None and right["n_steps"] == 3
    early = finish(q, " 42\nStep 2: 42 + 16 = 58\nStep 3: 58 - 3 = 55")  # wrong at step 1: doomed
    assert not early["correct"] and early["first_wrong_step"] == 1 and early["stated"] == 55
    late = finish(q, " 48, which is six eights\nStep 2: 48 + 16 = 64\nStep 3: 64 - 3 = 60")
    assert late["response"].splitlines()[0] == "Step 1: 8 * 6 = 48" and late["first_wrong_step"] == 3
    short = finish(q, " 48\nThat is all.")
    assert short["response"] == "Step 1: 8 * 6 = 48" and not short["correct"] and short["first_wrong_step"] == 2
    none = finish(q, " I do not know")
    assert none["stated"] is None and not none["correct"]
    assert clean_steps("Step 1: 1 + 1 = 2\nStep 2: 2 + 1 = 3\nStep 3: 3 + 1 = 4", 2) == ["Step 1: 1 + 1 = 2", "Step 2: 2 + 1 = 3"]


def test_the_written_out_answer_is_correct_for_every_question():
    for q in make_questions(50, 3):
        text = canonical_answer(q["question"])
        row = finish(q, text[len(q["prefix"]):])
        assert row["correct"] and row["first_wrong_step"] is None and row["response"] == text


def test_shipped_rows_validate_and_their_labels_are_the_last_steps():
    built = build(MathStepsConfig())
    card = find_card("math-steps")
    card.validate_rows(built["samples"] + built["shifted_samples"], "samples")
    card.validate_rows(built["pairs"] + built["shifted_pairs"], "pairs")
    cfg = MathStepsConfig()
    assert len(built["samples"]) == cfg.n_questions * cfg.samples_per_question
    questions = {q["qid"]: q for q in make_questions(cfg.n_questions, cfg.seed)}
    for s in built["samples"][:500] + built["shifted_samples"][:200]:
        q = questions[s["qid"]]
        again = finish(q, s["response"][len(q["prefix"]):]) if s["response"].startswith(q["prefix"]) else None
        assert again is not None and {k: again[k] for k in ("stated", "correct", "first_wrong_step")} == \
            {k: s[k] for k in ("stated", "correct", "first_wrong_step")}
    assert {s["split"] for s in built["shifted_samples"]} == {"shifted"}
    assert {s["qid"] for s in built["shifted_samples"]} == {s["qid"] for s in built["samples"] if s["split"] == "test"}
    wrong = Counter(s["first_wrong_step"] for s in built["samples"] if not s["correct"])
    assert wrong[1] + wrong[2] > 0.5 * sum(wrong.values())  # most chains go wrong early


def test_the_loader_serves_math_steps_with_its_shifted_split():
    data = load_preferences(TextDataConfig(name="math-steps"))
    assert data.train_pairs and data.test_pairs and data.shifted_pairs and data.test_samples and data.shifted_samples
    assert not {p["qid"] for p in data.train_pairs} & {p["qid"] for p in data.test_pairs + data.shifted_pairs}
    assert all(p["chosen"].startswith("Step 1:") and p["rejected"].startswith("Step 1:") for p in data.train_pairs)


@pytest.mark.slow
def test_builder_regenerates_the_shipped_rows_from_the_seed():
    from rewardlab.data.math_steps import generate_samples

    default = MathStepsConfig()
    fresh = generate_samples(MathStepsConfig(n_questions=default.batch_questions))
    assert fresh == build(default)["samples"][: len(fresh)]
