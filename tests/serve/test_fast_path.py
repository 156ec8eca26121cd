"""The serving fast path changes speed, not scores: token-budget batches and torch.compile give the eager,
one-at-a-time rewards."""

from __future__ import annotations

import pytest
import torch

from rewardlab import backbones, rewards
from rewardlab.models.scalar_head import build_scalar_rm
from rewardlab.rewards import ScalarTextReward
from rewardlab.rewards.text import compile_for_serving, padded_batches

TEXTS = [("What is 2 + 2?", "4"), ("Explain", "word " * 70), ("Hi", "Hello there, how are you today?"), ("Sum 1..10", "55")] * 5


def test_token_budget_batches_cover_every_row_once_within_the_budget():
    seqs = [[1] * n for n in (5, 90, 12, 12, 40, 3, 200, 7)]
    seen, budget = [], 128
    for idx, ids, mask in padded_batches(seqs, batch_size=64, pad_id=0, max_tokens=budget):
        assert ids.shape[0] == 1 or ids.numel() <= budget  # a row longer than the budget gets a pass of its own
        assert ids.shape[1] == max(len(seqs[i]) for i in idx) and mask.sum() == sum(len(seqs[i]) for i in idx)
        seen += idx
    assert sorted(seen) == list(range(len(seqs)))
    assert [len(seqs[i]) for i in seen] == sorted(map(len, seqs), reverse=True)  # longest first: little padding


@pytest.fixture(scope="module")
def reward(tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.MINILM)
    folder = ScalarTextReward.save(build_scalar_rm(backbones.MINILM, tokenizer), tokenizer, tmp_path_factory.mktemp("rm") / "rm",
                                   max_length=96, template="plain")
    return rewards.load(folder)


def test_batched_scores_equal_one_at_a_time_scores(reward):
    alone = [reward.score([p], [r])[0] for p, r in TEXTS]
    reward.batch_size, reward.max_batch_tokens = 64, 256
    assert reward.score([p for p, _ in TEXTS], [r for _, r in TEXTS]) == pytest.approx(alone, abs=1e-5)


def test_compiled_model_scores_like_the_eager_one(reward):
    eager = reward.score([p for p, _ in TEXTS], [r for _, r in TEXTS])
    compile_for_serving(reward)
    assert reward.score([p for p, _ in TEXTS], [r for _, r in TEXTS]) == pytest.approx(eager, abs=1e-4)
    assert reward.score([TEXTS[1][0]], [TEXTS[1][1]]) == pytest.approx([eager[1]], abs=1e-4)  # batch 1, a new length
