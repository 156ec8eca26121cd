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


def rewardbench2_ties(rows: list[dict], scores: dict) -> float:
    """RewardBench 2's Ties score as its ``process_single_model`` computes it, restated here from its code: per
    prompt K (ids ``ref:K`` with one correct answer, ``tied:K`` with several), accurate when the worst correct answer
    beats the best incorrect one; the overall score weighs the two accuracies and how often the gap to the incorrect
    answers exceeds the spread among the correct ones."""
    stats = {"ref": {}, "tied": {}}
    for r in rows:
        kind, number = r["id"].split(":")
        correct = [scores[t] for t in r["chosen"]]
        wrong = [scores[t] for t in r["rejected"]]
        spread = max(correct) - min(correct) if len(correct) > 1 else None
        stats[kind][int(number)] = (min(correct) - max(wrong) > 0, spread, min(correct) - max(wrong))
    both = set(stats["ref"]) & set(stats["tied"])
    spread = np.array([stats["tied"][k][1] for k in both], float)
    tied_gap = np.array([stats["tied"][k][2] for k in both])
    hard = np.minimum(np.array([stats["ref"][k][2] for k in both]), tied_gap)
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.nan_to_num(np.tanh(hard / spread - 1), nan=0.0).mean()
    return (0.3 * np.mean([s[0] for s in stats["tied"].values()]) + 0.3 * np.mean([s[0] for s in stats["ref"].values()])
            + 0.2 * np.mean(tied_gap > spread) + 0.2 * np.mean(hard > spread) + 0.01 * margin)


def ties_rows(rng, prompts: int = 30) -> tuple[list[dict], dict]:
    rows, scores = [], {}
    for k in range(prompts):
        n_tied = int(rng.integers(2, 5))
        rows.append({"id": f"ref:{k}", "prompt": f"T{k}", "chosen": [f"ref {k} right"], "rejected": [f"{k} wrong {j}" for j in range(3)],
                     "subset": "Ties"})
        rows.append({"id": f"tied:{k}", "prompt": f"T{k}", "chosen": [f"tied {k} right {j}" for j in range(n_tied)],
                     "rejected": [f"{k} wrong {j}" for j in range(3)], "subset": "Ties"})
    for r in rows:
        for text in r["chosen"] + r["rejected"]:
            scores.setdefault(text, float(rng.normal(1.0 if "right" in text else 0.0, 1.0)))
    return rows, scores


def test_the_ties_subset_gets_rewardbench2s_own_score_and_the_rest_stays_best_of_n():
    rng = np.random.default_rng(2)
    ties, tie_scores = ties_rows(rng)
    others, other_scores = rewardbench2_rows(rng)
    rows, scores = others + ties, {**other_scores, **tie_scores}
    report = best_of_n_report(rows, [[scores[t] for t in r["chosen"]] for r in rows], [[scores[t] for t in r["rejected"]] for r in rows])
    assert report["subsets"]["Ties"]["accuracy"] == pytest.approx(rewardbench2_ties(ties, scores))
    assert report["subsets"]["Ties"]["rule"] == "rewardbench2-ties"
    theirs = rewardbench2_scoring(others, scores)  # the Ties rows do not enter the other subsets or the overall accuracy
    assert {k: v["accuracy"] for k, v in report["subsets"].items() if k != "Ties"} == pytest.approx(theirs)
    assert report["best_of_n_accuracy"] == pytest.approx(np.mean(list(theirs.values())))
    assert report["subset_mean"] == pytest.approx(np.mean([*theirs.values(), rewardbench2_ties(ties, scores)]))


def test_several_chosen_answers_must_all_beat_the_best_rejected_one():
    from rewardlab.rewards.report import best_of_n_outcomes

    assert best_of_n_outcomes([[3.0, 2.0], [3.0, 0.5], [1.0]], [[1.0, 2.0], [1.0], [1.0]]).tolist() == [1.0, 0.0, 1.0]
