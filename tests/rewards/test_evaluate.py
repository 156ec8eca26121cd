"""Evaluation always shows length baselines, so a reward that only learned length is visible at a glance."""

from __future__ import annotations

import numpy as np

from rewardlab.rewards.evaluate import evaluate_text_reward, figures, pairwise_accuracy


class LengthReward:
    """A real TextReward whose score is the response length: the thing a lazy RM learns."""

    def score(self, prompts, responses, references=None):
        return [float(len(r)) for r in responses]


class KnowsTheAnswer:
    def score(self, prompts, responses, references=None):
        return [1.0 if "right" in r else 0.0 for r in responses]


PAIRS = [
    {"prompt": "q1", "chosen": "right", "rejected": "wrong but much longer"},
    {"prompt": "q2", "chosen": "right answer given at length", "rejected": "wrong"},
    {"prompt": "q3", "chosen": "right", "rejected": "wrong, rambling on"},
    {"prompt": "q4", "chosen": "right", "rejected": "nope, wrong!!"},
]
SAMPLES = [{"prompt": p["prompt"], "response": r, "correct": r == p["chosen"]} for p in PAIRS for r in (p["chosen"], p["rejected"])]


def test_ties_count_half():
    assert pairwise_accuracy(np.zeros(4), np.zeros(4)) == 0.5


def test_length_reward_has_no_margin_over_length_baseline():
    m = evaluate_text_reward(LengthReward(), PAIRS, SAMPLES).metrics
    assert m["pair_accuracy"] == m["length_longer_pair_accuracy"] == 0.25
    assert m["length_shorter_pair_accuracy"] == 0.75
    assert m["margin_over_length"] == -0.5
    assert m["auroc"] == m["length_longer_auroc"]


def test_a_reward_that_knows_the_answer_beats_length():
    result = evaluate_text_reward(KnowsTheAnswer(), PAIRS, SAMPLES)
    assert result.metrics["pair_accuracy"] == 1.0 and result.metrics["auroc"] == 1.0
    assert result.metrics["margin_over_length"] == 0.25
    figs = figures(result, [{"step": 1, "loss": 0.7}, {"step": 2, "loss": 0.5}])
    assert set(figs) == {"plots/roc_curve.png", "plots/reward_histogram.png", "plots/learning_curves.png"}
    labels = [line.get_label() for line in figs["plots/roc_curve.png"].axes[0].get_lines()]
    assert any("longer is better" in label for label in labels)


class CountingReward(KnowsTheAnswer):
    def __init__(self):
        self.seen = []

    def score(self, prompts, responses, references=None):
        self.seen += list(zip(prompts, responses))
        return super().score(prompts, responses, references)


def test_each_distinct_text_is_scored_once():
    reward = CountingReward()
    metrics = evaluate_text_reward(reward, PAIRS, SAMPLES).metrics
    assert metrics["pair_accuracy"] == 1.0 and metrics["auroc"] == 1.0
    assert len(reward.seen) == len(set(reward.seen)) == 8  # 4 pairs + 8 samples, all 8 texts shared
