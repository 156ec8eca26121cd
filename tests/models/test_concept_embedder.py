"""The S2E joint embedding: its loss, its retrieval metrics, and that brief training retrieves far better than chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardlab.data.concepts import ALL_CONCEPT_SETS, explain
from rewardlab.data.s2e_dataset import S2EDatasetConfig, build
from rewardlab.learners import s2e
from rewardlab.models.concept_embedder import ConceptEmbedder, build_vocab, rank_candidates, recall_at, s2e_loss, tokenize


def test_vocabulary_covers_every_explanation_of_a_domain():
    texts = [explain(s, "lunarlander") for s in ALL_CONCEPT_SETS["lunarlander"]]
    vocab = build_vocab(texts)
    assert vocab[:2] == ["<pad>", "<unk>"] and len(vocab) == len(set(vocab))
    enc = ConceptEmbedder("lunarlander", vocab).text
    ids, lengths = enc.token_ids(texts)
    assert (ids != 1).all(), "no template word may be unknown"
    assert lengths.max() == max(len(tokenize(t)) for t in texts)


def test_loss_is_zero_at_the_target_distances_and_grows_away_from_them():
    texts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    states = torch.tensor([[0.0, 0.0]])
    # the matching text at distance 0 and the mismatched one at distance 1 (the margin): nothing to learn
    loss, stats = s2e_loss(states, texts, torch.tensor([0]), torch.tensor([[1]]), margin=1.0)
    assert loss.item() == pytest.approx(0.0) and stats["neg_distance"] == pytest.approx(1.0)
    # a mismatched text at distance 3 costs (3 - 1)^2 = 4; the matching one at distance 1 costs 1
    far, _ = s2e_loss(states, texts, torch.tensor([0]), torch.tensor([[2]]), margin=1.0)
    near, _ = s2e_loss(states, texts, torch.tensor([1]), torch.tensor([[1]]), margin=1.0)
    assert far.item() == pytest.approx(4.0) and near.item() == pytest.approx(1.0 + 0.0)


def test_recall_counts_the_truth_among_the_k_nearest():
    texts = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    states = torch.tensor([[0.1], [1.2], [2.9]])
    ranking = rank_candidates(states, texts)
    assert ranking[:, 0].tolist() == [0, 1, 3]
    assert recall_at(ranking, torch.tensor([0, 2, 1])) == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 3: pytest.approx(1.0)}


def test_negatives_never_include_the_true_explanation_and_half_are_one_concept_away():
    rng = np.random.default_rng(0)
    neighbours = s2e.neighbour_sets("connect4")
    truth = rng.integers(len(ALL_CONCEPT_SETS["connect4"]), size=200)
    neg = s2e.sample_negatives(truth, len(ALL_CONCEPT_SETS["connect4"]), neighbours, 8, rng)
    assert neg.shape == (200, 8) and not (neg == truth[:, None]).any()
    sets = [set(s) for s in ALL_CONCEPT_SETS["connect4"]]
    assert all(len(sets[t] ^ sets[j]) == 1 for t, row in zip(truth, neg) for j in row[:4])


@pytest.mark.parametrize("domain, episodes, epochs", [("lunarlander", 120, 12)])  # Connect 4: tests/rewards/test_concept_reward.py
def test_brief_training_retrieves_explanations_far_better_than_chance(domain, episodes, epochs):
    rows = build(S2EDatasetConfig(domain=domain, episodes=episodes, seed=3))
    train = s2e.transition_arrays([r for r in rows if r["split"] == "train"], domain, mirror=True)
    test = s2e.transition_arrays([r for r in rows if r["split"] == "test"], domain)
    cfg = s2e.Config(name="t", embedding={"epochs": epochs, "batch_size": 128})
    embedder, history = s2e.train_embedding(cfg, domain, train, test)
    assert history[-1]["loss"] < history[0]["loss"]
    n_candidates = len(ALL_CONCEPT_SETS[domain])
    majority = (test["truth"] == np.bincount(train["truth"]).argmax()).mean()
    recall = history[-1]["recall_at_1"]
    assert recall > 5 / n_candidates, f"Recall@1 {recall:.3f} vs chance {1 / n_candidates:.3f}"
    assert recall > majority + 0.1, f"Recall@1 {recall:.3f} vs always the most frequent explanation {majority:.3f}"
    assert history[-1]["recall_at_3"] >= history[-1]["recall_at_2"] >= recall
