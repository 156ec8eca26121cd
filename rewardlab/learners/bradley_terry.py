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

import json

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rewardlab import backbones
from rewardlab.data import PreferenceData, TextDataConfig, load_preferences
from rewardlab.tracking import RecipeBase, resume_point, tracked_run
from rewardlab.rewards.evaluate import evaluate_splits, figures, format_report
from rewardlab.rewards.text import ScalarTextReward, encode


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backbone: str = backbones.SMOLLM2  # embedded:smollm2-135m-instruct, embedded:minilm-l6, a hub id or a path
    max_length: int = Field(256, gt=8)  # tokens per (prompt, response); longer inputs are cut from the left
    template: Literal["chat", "plain"] = "chat"  # chat: the tokenizer's chat template; plain: "prompt\nresponse", fewer tokens
    freeze_layers: int = Field(0, ge=0)  # freeze embeddings + the first N blocks: faster, less memory, less capacity
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: str | None = None  # e.g. "flash_attention_2" with the [gpu] extra; None lets transformers pick


class TrainConfig(BaseModel):
    """Training knobs; names follow transformers' TrainingArguments where one exists."""

    model_config = ConfigDict(extra="forbid")
    epochs: float = Field(1.0, gt=0)
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = Field(8, ge=1)  # pairs per device per step
    grad_accum: int = Field(1, ge=1)
    learning_rate: float = Field(1e-5, gt=0)
    weight_decay: float = 0.0
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    lr_scheduler: str = "linear"
    center_rewards_coefficient: float | None = None  # Eisenstein et al. 2023; TRL recommends 0.01
    gradient_checkpointing: bool = False  # True saves activation memory at ~30% more compute
    group_by_length: bool = True  # batches of similar length pad less; False samples uniformly
    bf16: bool = False  # mixed precision; worth it on GPUs with bf16, usually slower on CPU
    logging_steps: int = Field(5, ge=1)
    save_steps: int = Field(50, ge=1)  # checkpoint cadence, for --resume
    eval_batch_size: int = Field(32, ge=1)


class Config(RecipeBase):
    learner: Literal["bradley_terry"] = "bradley_terry"
    data: TextDataConfig = TextDataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()


def tokenize_pairs(pairs: list[dict], tokenizer, max_length: int, template: str = "chat"):
    """A datasets.Dataset of chosen_ids/rejected_ids (TRL's pre-tokenized format) plus a length column."""
    from datasets import Dataset

    chosen, rejected, length = [], [], []
    for p in pairs:
        c, _ = encode(tokenizer, p["prompt"], p["chosen"], max_length, template)
        r, _ = encode(tokenizer, p["prompt"], p["rejected"], max_length, template)
        chosen.append(c)
        rejected.append(r)
        length.append(max(len(c), len(r)))
    return Dataset.from_dict({"chosen_ids": chosen, "rejected_ids": rejected, "length": length})


def reward_trainer(model, tokenizer, train_dataset, t: TrainConfig, output_dir, max_length: int, seed: int, callbacks=(),
                   trainer_class=None, data_collator=None, **trainer_kwargs):
    """A TRL RewardTrainer on pre-tokenized ``chosen_ids``/``rejected_ids`` (+ ``length``) rows, from the recipe's
    train section. Shared by every learner whose loss is -log sigma(r(chosen) - r(rejected)); a learner that adds
    a term passes its RewardTrainer subclass (``trainer_class``, built with ``trainer_kwargs``) and a collator
    for its extra columns."""
    import torch
    from trl import RewardConfig, RewardTrainer

    class _Trainer(trainer_class or RewardTrainer):
        # Keep every dataset column (length, a learner's extras) through column pruning: the length-grouped
        # sampler and the collator read them.
        def _set_signature_columns_if_needed(self):
            if self._signature_columns is None:
                self._signature_columns = ["margin", *train_dataset.column_names]

    args = RewardConfig(
        # Without use_cpu, a CPU-only torchrun launch trains one full copy per process instead of DDP (gloo).
        use_cpu=not torch.cuda.is_available(),
        output_dir=str(output_dir),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,
        lr_scheduler_type=t.lr_scheduler,
        center_rewards_coefficient=t.center_rewards_coefficient,
        gradient_checkpointing=t.gradient_checkpointing,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        bf16=t.bf16,
        max_length=max_length,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=1,
        save_only_model=False,
        report_to="none",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
    )
    return _Trainer(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer, callbacks=list(callbacks),
                    data_collator=data_collator, **trainer_kwargs)


def make_trainer(cfg: Config, data: PreferenceData, tokenizer, callbacks=()):
    """A TRL RewardTrainer configured from the recipe, on pre-tokenized pairs."""
    from transformers import set_seed

    from rewardlab.models.scalar_head import build_scalar_rm

    set_seed(cfg.seed)  # the new head is initialised here, before Trainer seeds anything
    model = build_scalar_rm(cfg.model.backbone, tokenizer, cfg.model.freeze_layers, cfg.model.dtype, cfg.model.attn_implementation)
    dataset = tokenize_pairs(data.train_pairs, tokenizer, cfg.model.max_length, cfg.model.template)
    return reward_trainer(model, tokenizer, dataset, cfg.train, cfg.out() / "checkpoints", cfg.model.max_length, cfg.seed, callbacks)


def log_eval_datasets(run, data: PreferenceData) -> None:
    """The held-out test pairs and samples, and the shifted split's, as MLflow evaluation inputs."""
    for rows, what in ((data.test_pairs, "test-pairs"), (data.test_samples, "test-samples"), (data.shifted_pairs, "shifted-pairs"),
                       (data.shifted_samples, "shifted-samples")):
        if rows:
            run.log_dataset(rows, f"{data.name}-{what}", None, "evaluation", data.source)


def run(cfg: Config, recipe_text: str = "", resume: bool = False, callbacks=()) -> dict:
    """Train, evaluate against length baselines, log everything to MLflow, and register the reward."""
    from rewardlab import tracking

    out = cfg.out()
    resume_id, checkpoint = resume_point(out, resume)
    data = load_preferences(cfg.data)
    tokenizer = backbones.load_tokenizer(cfg.model.backbone)
    with tracked_run(cfg, recipe_text, resume_id) as run:
        if not resume:
            run.log_dataset(data.train_pairs, f"{data.name}-train-pairs", data.card.path, "training", data.source)
            run.log_dataset(data.test_pairs, f"{data.name}-test-pairs", None, "evaluation", data.source)
            log_eval_datasets(run, data)
        trainer = make_trainer(cfg, data, tokenizer, callbacks=[run.trainer_callback(), *callbacks])
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        if not tracking.is_main_process():  # other DDP ranks are done: rank 0 saves, evaluates and logs
            return {"run_id": None, "global_step": trainer.state.global_step}
        m = cfg.model
        folder = ScalarTextReward.save(trainer.model, tokenizer, out / "reward", m.max_length, m.template, backbone=m.backbone, recipe=cfg.name)
        reward = ScalarTextReward(trainer.model, tokenizer, m.max_length, batch_size=cfg.train.eval_batch_size, template=m.template)
        result, shifted, metrics = evaluate_splits(reward, data)
        step = trainer.state.global_step
        run.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=step)
        for path, fig in figures(result, trainer.state.log_history, shifted).items():
            run.log_figure(fig, path)
        model_uri = run.log_reward_model(folder, cfg.name if cfg.tracking.register_model else None)
        run.set_tags({"model_uri": model_uri})
        (out / "eval.json").write_text(json.dumps({"run_id": run.run_id, "model_uri": model_uri, **metrics}, indent=2))
    print(format_report(metrics))
    print(run.summary(folder, model_uri), flush=True)
    return {"run_id": run.run_id, "model_uri": model_uri, "output_dir": str(out), "metrics": metrics,
            "log_history": trainer.state.log_history, "global_step": step}

