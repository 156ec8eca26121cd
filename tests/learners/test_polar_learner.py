"""The POLAR learner end to end on the embedded SmolLM2, with a fast rule-based policy pool: pretraining lowers the
discrimination loss and beats chance on held-out prompts, and fine-tuning starts from the pretrain run's MLflow URI."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab import learners, recipes, rewards
from rewardlab.data import DataError
from rewardlab.learners import polar

# A pool without language models: builds in a second. The two training policies differ in style; the held-out
# one is a second template writer.
POOL = [
    "pool.builder.n_topics=12",
    "pool.builder.n_arithmetic=8",
    "pool.builder.n_reasoning=4",
    'pool.builder.policies=[{id: template-bot, kind: template}, {id: bigram, kind: bigram}, {id: template-2, kind: template}]',
    "pool.builder.held_out_policies=[template-2]",
]
FAST = ["model.freeze_layers=28", "model.max_length=128", "train.batch_size=8", "train.logging_steps=1",
        "train.learning_rate=1e-3", "data.max_eval_pairs=24"]


@pytest.fixture(scope="module")
def pretrained(module_workdir):
    config, text, _ = recipes.load("polar_pretrain", POOL + FAST + ["train.max_steps=12", "pool.max_eval_triplets=32"])
    return learners.train(config, recipe_text=text)


def test_pretraining_loss_falls_and_discrimination_beats_chance(pretrained):
    losses = [h["loss"] for h in pretrained["log_history"] if "loss" in h]
    assert sum(losses[-4:]) / 4 < losses[0] - 0.05, losses  # starts at log 2 (zero head) and falls
    assert pretrained["metrics"]["discrimination_acc_heldout_prompts"] > 0.6  # chance is 0.5


def test_finetune_starts_from_the_pretrained_model_uri(pretrained, module_workdir):
    assert pretrained["model_uri"] == "models:/polar-pretrain/1"
    reward = rewards.load(pretrained["model_uri"])
    assert isinstance(reward, rewards.PolarReward)
    config, text, _ = recipes.load(
        "polar_finetune", POOL + FAST + ["train.max_steps=3", "data.max_train_pairs=24", "pool.max_eval_triplets=8"]
    )
    assert config.model.init_from == "models:/polar-pretrain/latest"
    # before its first step, the fine-tuning model scores exactly like the pretrained reward
    model, tokenizer = polar.build_model(config, polar.pretrained_folder(config))
    start = rewards.PolarReward(model, tokenizer, config.model.max_length, device="cpu")
    args = (["What is 2 + 3?", "Explain tea to a beginner."], ["5", "Tea is a drink."], ["2 + 3 = 5.", "Tea is brewed leaves."])
    assert start.score(*args) == pytest.approx(reward.score(*args), abs=1e-4)
    assert len(set(reward.score(*args))) == 2  # not the zero head any more
    tuned = learners.train(config, recipe_text=text)
    assert tuned["model_uri"] == "models:/polar-finetune/1"
    m = tuned["metrics"]
    assert m["train_rows"] == 24
    # the preference accuracies are the fine-tuned reward's own on the held-out reference pairs (recomputed here)
    _, test, _, _ = polar.reference_pairs(config.data, config.seed)
    final = rewards.load(tuned["model_uri"])
    prompts, refs = [r["prompt"] for r in test], [r["reference"] for r in test]
    chosen = np.asarray(final.score(prompts, [r["chosen"] for r in test], refs))
    rejected = np.asarray(final.score(prompts, [r["rejected"] for r in test], refs))
    ranked = (chosen > rejected) + 0.5 * (chosen == rejected)
    assert m["preference_acc_with_reference"] == pytest.approx(ranked.mean())
    harder = np.asarray([r["reference"] != r["chosen"] for r in test])
    assert m["preference_acc_reference_not_chosen"] == pytest.approx(ranked[harder].mean())


def test_an_encoder_backbone_is_refused(module_workdir):
    config, _, _ = recipes.load("polar_pretrain", POOL + ["model.backbone=embedded:minilm-l6", "model.freeze_layers=6"])
    with pytest.raises(DataError, match="causal LM"):
        polar.build_model(config)
