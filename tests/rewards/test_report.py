"""The evaluation measures from scores: best-of-N equals RewardBench 2's own scoring on a fixture in its field
layout; calibration and length bias on cases whose answers are known exactly; bootstrap intervals behave."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rewardlab.rewards.report import (best_of_n_report, bootstrap_interval, calibration, length_bias, pairs_report,
                                      pairwise_outcomes)


def rewardbench2_rows(rng) -> tuple[list[dict], dict]:
    """Rows in RewardBench 2's layout (prompt, chosen: [str], rejected: [str] x 3, num_correct, subset, id) and a
    score for every completion, ties included."""
    rows, scores = [], {}
    for i in range(60):
        row = {"id": str(i), "prompt": f"Q{i}", "chosen": [f"good {i}"], "rejected": [f"bad {i}.{j}" for j in range(3)],
               "num_correct": 1, "subset": ["Factuality", "Math", "Focus"][i % 3]}
        values = rng.integers(0, 4, size=4).astype(float)  # small integers: many ties with the chosen answer
        for text, value in zip(row["chosen"] + row["rejected"], values):
            scores[text] = value
        rows.append(row)
    return rows, scores


def rewardbench2_scoring(rows: list[dict], scores: dict) -> dict[str, float]:
    """RewardBench 2's rule as its scripts apply it: unroll every row into one row per completion (chosen first, then
    rejected), score them, regroup each row's best_of rows, and count the row right when np.argmax of the group's
    scores is 0; then the mean per subset."""
    unrolled = [{"id": r["id"], "subset": r["subset"], "text": t, "scores": scores[t]} for r in rows for t in r["chosen"] + r["rejected"]]
    df, best_of = pd.DataFrame(unrolled), 4
    results = []
    for start in range(0, len(df), best_of):
        group = df.iloc[start:start + best_of]
        results.append({"subset": group["subset"].iloc[0], "results": 1 if np.argmax(group["scores"].tolist()) == 0 else 0})
    return pd.DataFrame(results).groupby("subset")["results"].mean().to_dict()


def test_best_of_n_per_subset_equals_rewardbench2s_scoring_rule():
    rows, scores = rewardbench2_rows(np.random.default_rng(0))
    chosen = [scores[r["chosen"][0]] for r in rows]
    rejected = [[scores[t] for t in r["rejected"]] for r in rows]
    ours = best_of_n_report(rows, chosen, rejected)
    theirs = rewardbench2_scoring(rows, scores)
    assert {name: s["accuracy"] for name, s in ours["subsets"].items()} == pytest.approx(theirs)
    assert ours["best_of_n_accuracy"] == pytest.approx(np.mean(list(theirs.values())))  # equal-sized subsets
    assert all(s["count"] == 20 and s["ci_low"] <= s["accuracy"] <= s["ci_high"] for s in ours["subsets"].values())


def test_calibration_on_margins_with_known_answers():
    zero = calibration([1.0] * 8, [1.0] * 8)  # p = 0.5 in both orders: calibrated, and the Brier score of a coin
    assert zero["ece"] == pytest.approx(0.0) and zero["brier"] == pytest.approx(0.25)
    sure = calibration([50.0] * 8, [0.0] * 8)
    assert sure["ece"] == pytest.approx(0.0, abs=1e-9) and sure["brier"] == pytest.approx(0.0, abs=1e-9)
    three = calibration([math.log(3)] * 8, [0.0] * 8)  # p = 0.75, always right: under-confident by 0.25
    assert three["ece"] == pytest.approx(0.25) and three["brier"] == pytest.approx(0.0625)
    assert [d["predicted"] for d in three["reliability"]] == pytest.approx([0.25, 0.75])


def test_length_bias_of_a_reward_that_is_the_length():
    pairs = [{"chosen": "a" * n, "rejected": "b" * m} for n, m in ((5, 2), (3, 9), (7, 1), (2, 4))]
    chosen = [len(p["chosen"]) for p in pairs]
    rejected = [len(p["rejected"]) for p in pairs]
    bias = length_bias(pairs, chosen, rejected)
    assert bias["length_spearman"] == pytest.approx(1.0)
    assert bias["accuracy_chosen_longer"] == 1.0 and bias["accuracy_chosen_shorter"] == 0.0
    assert bias["length_only_accuracy"] == 0.5 and (bias["pairs_chosen_longer"], bias["pairs_chosen_shorter"]) == (2, 2)


def test_pairs_report_and_bootstrap_intervals():
    rng = np.random.default_rng(1)
    chosen, rejected = rng.normal(1, 1, 400), rng.normal(0, 1, 400)
    pairs = [{"chosen": "x", "rejected": "y", "subset": "s"}] * 400
    report = pairs_report(pairs, chosen, rejected)
    assert report["pairwise_accuracy"] == pytest.approx(pairwise_outcomes(chosen, rejected).mean())
    assert report["pairwise_ci_low"] < report["pairwise_accuracy"] < report["pairwise_ci_high"]
    narrow = bootstrap_interval(pairwise_outcomes(chosen, rejected))
    wide = bootstrap_interval(pairwise_outcomes(chosen[:40], rejected[:40]))
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert bootstrap_interval([1, 0, 1, 1], seed=3) == bootstrap_interval([1, 0, 1, 1], seed=3)
