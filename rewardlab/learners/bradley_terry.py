"""Bradley-Terry reward model on TRL's RewardTrainer: the baseline every other learner must beat.

Loss: -log sigma(r(x, y_chosen) - r(x, y_rejected)), TRL's own ``compute_loss``. What rewardlab adds:

* tokenization once, by the same ``encode`` the inference class uses (TRL then skips its own pass);
* length-grouped batches, so a batch pads to similar lengths;
* gradient checkpointing off by default (TRL turns it on; on a small model it costs speed and saves little);
* MLflow tracking of the recipe, data, curves, evaluation plots and the registered model;
* resume from the last checkpoint into the same MLflow run.

Because training runs through transformers' Trainer, ``accelerate launch`` or ``torchrun`` scales it to many
devices (DDP, FSDP, DeepSpeed) with no code here.
"""

from __future__ import annotations

from typing import Literal

from rewardlab import backbones
from rewardlab.data import PreferenceData, TextDataConfig, load_preferences
from rewardlab.tracking import Fitted, Job, RecipeBase
from rewardlab.learners._trainer import (ModelConfig, TrainConfig, fit_trainer, normalization_metrics, preference_dataset, reward_trainer, scalar_model,
                                         text_datasets)
from rewardlab.rewards.evaluate import evaluate_splits, figures, format_report
from rewardlab.rewards.text import ScalarTextReward, encode


class Config(RecipeBase):
    learner: Literal["bradley_terry"] = "bradley_terry"
    data: TextDataConfig = TextDataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()


def tokenize_pairs(pairs: list[dict], tokenizer, max_length: int, template: str = "chat", counts: dict | None = None):
    """A datasets.Dataset of chosen_ids/rejected_ids (TRL's pre-tokenized format) plus a length column."""
    return preference_dataset(pairs, lambda row, side: encode(tokenizer, row["prompt"], row[side], max_length, template), counts=counts)


def make_trainer(cfg: Config, data: PreferenceData, tokenizer, callbacks=(), counts: dict | None = None):
    """A TRL RewardTrainer configured from the recipe, on pre-tokenized pairs (``counts``: see preference_dataset)."""
    model = scalar_model(cfg.model, tokenizer, cfg.seed)
    dataset = tokenize_pairs(data.train_pairs, tokenizer, cfg.model.max_length, cfg.model.template, counts)
    return reward_trainer(model, tokenizer, dataset, cfg.train, cfg.out() / "checkpoints", cfg.model.max_length, cfg.seed, callbacks,
                          lora=cfg.model.lora, freeze_layers=cfg.model.freeze_layers)


def load(cfg: Config) -> PreferenceData:
    return load_preferences(cfg.data)


def datasets(cfg: Config, data: PreferenceData) -> list:
    return text_datasets(data)


def fit(cfg: Config, data: PreferenceData, job: Job) -> Fitted:
    """Train, then evaluate against the length baselines on the test (and shifted) split."""
    tokenizer = backbones.load_tokenizer(cfg.model.backbone)
    counts: dict = {}
    trainer = make_trainer(cfg, data, tokenizer, callbacks=[job.run.trainer_callback(), *job.callbacks], counts=counts)
    model, adapter, extra = fit_trainer(trainer, job, counts)
    if model is None:
        return Fitted(None, extra=extra)
    m = cfg.model
    folder = ScalarTextReward.save(model, tokenizer, job.out / "reward", m.max_length, m.template, backbone=m.backbone, recipe=cfg.name)
    reward = ScalarTextReward(model, tokenizer, m.max_length, batch_size=cfg.train.eval_batch_size, template=m.template)
    result, shifted, metrics = evaluate_splits(reward, data)
    metrics |= adapter | normalization_metrics(folder, result.scores())
    return Fitted(folder, metrics, figures(result, extra["log_history"], shifted), format_report(metrics), extra["global_step"], extra=extra)
