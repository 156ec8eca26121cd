"""What the text learners share, below all of them: the model and train sections of their recipes, the mapping of
those sections onto TRL's ``RewardConfig``, the RewardTrainer factory and the tokenisation of preference rows.

Every learner whose loss is -log sigma(r(chosen) - r(rejected)) (Bradley-Terry, the goal-conditioned RM, POLAR)
trains through ``reward_trainer``; one that adds a term passes its RewardTrainer subclass and a collator for its
extra columns. No learner imports another learner: they import this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rewardlab import backbones


class LoraSettings(BaseModel):
    """peft LoRA adapters on the backbone; the scalar head is trained in full (peft's modules_to_save for SEQ_CLS).
    The saved reward is the merged model, so it loads, serves and registers like any other."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | None = None  # None: peft's default for the architecture (q_proj, v_proj on Llama)


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backbone: str = backbones.SMOLLM2  # embedded:smollm2-135m-instruct, embedded:minilm-l6, a hub id or a path
    max_length: int = Field(256, gt=8)  # tokens per (prompt, response); longer inputs are cut from the left
    template: Literal["chat", "plain"] = "chat"  # chat: the tokenizer's chat template; plain: "prompt\nresponse", fewer tokens
    freeze_layers: int = Field(0, ge=0)  # freeze embeddings + the first N blocks: faster, less memory, less capacity
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: str | None = None  # e.g. "flash_attention_2" with the [gpu] extra; None lets transformers pick
    # LoRA instead of full fine-tuning: {r, alpha, dropout, target_modules}; with freeze_layers N, only the blocks
    # above the first N get adapters (the same "train the top blocks" as without LoRA)
    lora: LoraSettings | None = None


class TrainConfig(BaseModel):
    """Training knobs. Each maps onto one field of TRL's RewardConfig (``TRL_FIELDS``); ``trl`` sets any other."""

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
    # shared_prompt: each pair is one packed row, the prompt computed once for both answers (rewardlab/models/packing.py;
    # exact: the same rewards, loss and gradients as unpacked); none: TRL's padded chosen + rejected batch (the reference)
    packing: Literal["shared_prompt", "none"] = "none"
    # Any other RewardConfig / TrainingArguments field, passed through as it is (e.g. {optim: adamw_torch_fused,
    # deepspeed: ds.json}); a name RewardConfig does not have is an error when training starts.
    trl: dict = {}


#: recipe ``train`` field -> TRL RewardConfig field. transformers 5 takes a float ``warmup_steps`` below 1 as a ratio
#: of the total steps, and ``train_sampling_strategy`` replaced ``group_by_length``.
TRL_FIELDS: dict[str, str | Callable] = {
    "epochs": "num_train_epochs",
    "max_steps": "max_steps",
    "batch_size": "per_device_train_batch_size",
    "eval_batch_size": "per_device_eval_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "learning_rate": "learning_rate",
    "weight_decay": "weight_decay",
    "warmup_ratio": "warmup_steps",
    "lr_scheduler": "lr_scheduler_type",
    "center_rewards_coefficient": "center_rewards_coefficient",
    "gradient_checkpointing": "gradient_checkpointing",
    "group_by_length": lambda on: {"train_sampling_strategy": "group_by_length" if on else "random"},
    "bf16": "bf16",
    "logging_steps": "logging_steps",
    "save_steps": "save_steps",
}

#: what rewardlab fixes whatever the recipe says: its own MLflow logging, checkpoints that --resume can continue
#: from (optimizer and scheduler included), and every dataset column kept for the collator and the sampler.
FIXED = {"save_strategy": "steps", "save_total_limit": 1, "save_only_model": False, "report_to": "none", "dataloader_num_workers": 0}


def reward_config(t: TrainConfig, output_dir, max_length: int, seed: int):
    """TRL's RewardConfig for a recipe's train section (``TRL_FIELDS``, then ``FIXED``, then ``t.trl``)."""
    import dataclasses

    import torch
    from trl import RewardConfig

    kwargs: dict = {}
    known = {f.name for f in dataclasses.fields(RewardConfig)}
    for name, target in TRL_FIELDS.items():
        value = getattr(t, name)
        kwargs.update(target(value) if callable(target) else {target: value})
    if "activation_checkpointing" in known:  # its new name (transformers 5.x warns at the old one, whatever its value)
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
    unknown = sorted(set(t.trl) - known)
    if unknown:
        from rewardlab.data.cards import DataError

        raise DataError(f"train.trl: RewardConfig has no field {', '.join(unknown)} (see TRL's RewardConfig and transformers' "
                        "TrainingArguments for the names)")
    # Without use_cpu, a CPU-only torchrun launch trains one full copy per process instead of DDP (gloo).
    return RewardConfig(output_dir=str(output_dir), use_cpu=not torch.cuda.is_available(), max_length=max_length, seed=seed,
                        data_seed=seed, **kwargs, **FIXED, **t.trl)


def peft_config(lora: LoraSettings | None, model, freeze_layers: int = 0):
    """peft's LoraConfig for ``lora`` on ``model`` (None without LoRA)."""
    if lora is None:
        return None
    from peft import LoraConfig

    from rewardlab.models.scalar_head import blocks_of

    blocks = blocks_of(model)
    n = len(blocks) if blocks is not None else 0
    layers = list(range(freeze_layers, n)) if freeze_layers and n else None
    return LoraConfig(task_type="SEQ_CLS", r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, layers_to_transform=layers)


def final_model(trainer) -> tuple[object, dict]:
    """The trained model to save and evaluate: with LoRA the adapters merged into the backbone (a plain
    transformers model again), and the adapter's size; without, the model as it is."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if not hasattr(model, "merge_and_unload"):
        return model, {}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    info = {"lora_trainable_params": float(trainable), "lora_adapter_mb": trainable * 4 / 2**20}
    return model.merge_and_unload(), info


def packed_trainer_class():
    """TRL's RewardTrainer that also takes packed batches (``PackedCollator``): the rewards come from one forward
    of the packed rows (``packing.packed_forward``), then TRL's own loss, margin, centring and metrics apply to them
    unchanged. Unpacked batches go to TRL as they are. The final hidden states of the last packed batch stay in
    ``packed_hidden`` for a learner that adds a term on them."""
    from transformers.modeling_outputs import SequenceClassifierOutput
    from trl import RewardTrainer

    from rewardlab.models.packing import packed_forward

    class PackedRewardTrainer(RewardTrainer):
        packed_hidden = None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "read_index" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            rewards, self.packed_hidden = packed_forward(model, inputs)
            trl_inputs = {"attention_mask": inputs["tokens"]}  # TRL counts the tokens processed from it
            if "margin" in inputs:
                trl_inputs["margin"] = inputs["margin"]
            computed = lambda **_: SequenceClassifierOutput(logits=rewards[:, None])  # noqa: E731 - TRL calls model(**inputs)
            return super().compute_loss(computed, trl_inputs, return_outputs, num_items_in_batch)

    return PackedRewardTrainer


class PackedCollator:
    """Pre-tokenized preference rows (``chosen_ids``, ``rejected_ids``, optional ``margin`` and the columns named in
    ``extra``) as one packed batch; shared-prompt rows for causal models, side-by-side rows for encoders."""

    def __init__(self, pad_token_id: int, causal: bool, extra: tuple[str, ...] = ()):
        self.pad_token_id, self.causal, self.extra = pad_token_id, causal, extra

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        from rewardlab.models.packing import collate, pack

        rows = [pack(e["chosen_ids"], e["rejected_ids"], share=self.causal, pad_id=self.pad_token_id) for e in examples]
        out = collate(rows, self.pad_token_id, self.causal)
        out["packed_rows"] = rows
        if "margin" in examples[0]:
            out["margin"] = torch.tensor([float(e["margin"]) for e in examples])
        for name in self.extra:
            out[name] = torch.tensor([e[name] for e in examples])
        return out


def reward_trainer(model, tokenizer, train_dataset, t: TrainConfig, output_dir, max_length: int, seed: int, callbacks=(),
                   trainer_class=None, data_collator=None, lora: LoraSettings | None = None, freeze_layers: int = 0, **trainer_kwargs):
    """A TRL RewardTrainer on pre-tokenized ``chosen_ids``/``rejected_ids`` (+ ``length``) rows, from the recipe's
    train section; with ``lora``, TRL wraps the model in peft adapters (``peft_config``). A learner that adds a loss
    term passes its RewardTrainer subclass (``trainer_class``, built with ``trainer_kwargs``) and a collator for its
    extra columns."""
    class _Trainer(trainer_class or packed_trainer_class()):
        # Keep every dataset column (length, a learner's extras) through column pruning: the length-grouped
        # sampler and the collator read them.
        def _set_signature_columns_if_needed(self):
            if self._signature_columns is None:
                self._signature_columns = ["margin", *train_dataset.column_names]

    args = reward_config(t, output_dir, max_length, seed)
    if t.packing == "shared_prompt":
        attention = getattr(model.config, "_attn_implementation", None) or ""
        if attention.startswith("flash"):
            from rewardlab.data.cards import DataError

            raise DataError(f"train.packing: shared_prompt needs an attention that takes a 4D mask (sdpa or eager); model."
                            f"attn_implementation is {attention}, which takes 2D masks only: use train.packing: none with it")
    if t.packing == "shared_prompt" and data_collator is None:
        from rewardlab.models.packing import is_causal

        data_collator = PackedCollator(tokenizer.pad_token_id, is_causal(model))
    return _Trainer(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer, callbacks=list(callbacks),
                    data_collator=data_collator, peft_config=peft_config(lora, model, freeze_layers), **trainer_kwargs)


def preference_dataset(rows: Iterable[dict], encode: Callable[[dict, str], tuple], good: str = "chosen", bad: str = "rejected",
                       starts: bool = False, counts: dict | None = None):
    """A datasets.Dataset in TRL's pre-tokenized format: ``chosen_ids`` = encode(row, good), ``rejected_ids`` =
    encode(row, bad), ``length`` (the longer of the two, for length grouping), and with ``starts`` the index of
    each side's first response token (``chosen_start``/``rejected_start``).

    ``encode(row, side)`` returns ``(ids, cut)``, or ``(ids, cut, start)`` when ``starts`` is set. Pairs longer than
    the model's max length are cut from the left (never dropped, as TRL's own tokenisation would); ``counts``, when
    given, receives ``truncated_pairs`` (either side cut) and ``pairs``."""
    from datasets import Dataset

    cols: dict[str, list] = {"chosen_ids": [], "rejected_ids": [], "length": []}
    if starts:
        cols |= {"chosen_start": [], "rejected_start": []}
    rows = list(rows)
    if rows and all("margin" in row for row in rows):  # TRL's margin loss: -log sigma(r_c - r_r - margin)
        cols["margin"] = [float(row["margin"]) for row in rows]
    truncated = 0
    for row in rows:
        c, r = encode(row, good), encode(row, bad)
        truncated += bool(c[1] or r[1])
        cols["chosen_ids"].append(c[0])
        cols["rejected_ids"].append(r[0])
        cols["length"].append(max(len(c[0]), len(r[0])))
        if starts:
            cols["chosen_start"].append(c[2])
            cols["rejected_start"].append(r[2])
    if counts is not None:
        counts.update(truncated_pairs=float(truncated), pairs=float(len(rows)))
    return Dataset.from_dict(cols)


def scalar_model(cfg_model: ModelConfig, tokenizer, seed: int):
    """The backbone with a new scalar head, seeded first (the head is initialised here, before Trainer seeds)."""
    from transformers import set_seed

    from rewardlab.models.scalar_head import build_scalar_rm

    set_seed(seed)
    m = cfg_model
    return build_scalar_rm(m.backbone, tokenizer, m.freeze_layers, m.dtype, m.attn_implementation)


def text_datasets(data, with_train: bool = True) -> list:
    """The MLflow dataset inputs of a text learner: its train pairs (with the card), and the test and shifted
    pairs and samples as evaluation inputs."""
    from rewardlab.tracking import DatasetInput

    out = [DatasetInput(data.train_pairs, f"{data.name}-train-pairs", "training", data.source, data.card.path)] if with_train else []
    for rows, what in ((data.test_pairs, "test-pairs"), (data.test_samples, "test-samples"), (data.shifted_pairs, "shifted-pairs"),
                       (data.shifted_samples, "shifted-samples")):
        if rows:
            out.append(DatasetInput(rows, f"{data.name}-{what}", "evaluation", data.source))
    return out


def fit_trainer(trainer, job, counts: dict) -> tuple[object | None, dict, dict]:
    """Log the tokenisation counts (``preference_dataset``), train (from the job's checkpoint on --resume), and
    return (the model to save and evaluate, the LoRA adapter's size, the extras a learner returns: log history and
    global step). The model is None on the ranks of a multi-process run other than 0, which only train."""
    from rewardlab.tracking import is_main_process

    job.run.log_metrics({f"data/train_{k}": v for k, v in counts.items()}, step=0)  # cut from the left, never dropped
    trainer.train(resume_from_checkpoint=str(job.checkpoint) if job.checkpoint else None)
    extra = {"log_history": trainer.state.log_history, "global_step": trainer.state.global_step}
    if not is_main_process():
        return None, {}, extra
    model, adapter = final_model(trainer)
    return model, adapter, extra


def normalization_metrics(folder, scores) -> dict[str, float]:
    """Store the reward's statistics on the held-out answers in the saved folder's ``reward.json`` (what
    ``rewardlab serve --normalize`` and the rlhf reward functions' ``normalize`` apply) and return them as metrics
    (``reward_mean``, ``reward_std``, ``reward_q05`` ...) for MLflow."""
    from rewardlab.rewards.text import record_normalization

    stats = record_normalization(folder, scores)
    return {f"reward_{k}": float(v) for k, v in stats.items() if k != "n"}
