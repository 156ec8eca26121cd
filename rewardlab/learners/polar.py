"""POLAR: policy-discriminator pretraining, then reference-based fine-tuning (Dou et al., "Pre-Trained Policy
Discriminators are General Reward Models").

The reward r(prompt, reference, candidate) reads ``prompt\\nreference <sep> prompt\\ncandidate <reward>`` with a
zero-initialised linear head at the ``<reward>`` token (rewards/polar.py).

* ``stage: pretrain``: triplets from a pool of policies (data/policy_pool.py). For two policies A and B on one
  prompt: loss -log sigma(r(p, tA1, tA2) - r(p, tA1, tB1)): a second sample of the reference's own policy must
  outscore another policy's sample. Held-out policies never enter training.
* ``stage: finetune``: rows {prompt, reference, chosen, rejected} (POLAR's JSONL field names; strings or message
  lists): loss -log sigma(r(p, ref, chosen) - r(p, ref, rejected)). ``model.init_from`` names the pretrained reward
  (an MLflow URI or a folder); without it the backbone starts fresh, which is the paper's no-pretraining ablation.

Both losses are the Bradley-Terry loss on (chosen, rejected) token sequences, so training runs through TRL's
RewardTrainer (learners/_trainer.py, as the other text learners), and through accelerate for many devices.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rewardlab import backbones
from rewardlab.data import DataError, TextDataConfig, load_preferences
from rewardlab.tracking import DatasetInput, Fitted, Job, RecipeBase
from rewardlab.learners._trainer import LoraSettings, TrainConfig, fit_trainer, normalization_metrics, preference_dataset, reward_trainer
from rewardlab.rewards.evaluate import score_unique
from rewardlab.rewards.polar import PolarReward, add_polar_tokens, encode_triple


class PolarModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backbone: str = backbones.SMOLLM2  # a causal LM: embedded:smollm2-135m-instruct, a hub id or a path
    init_from: str | None = None  # finetune: the pretrained POLAR reward (models:/name@alias, runs:/..., a folder)
    max_length: int = Field(192, gt=16)  # prompt (twice) + reference + candidate + 2 special tokens
    freeze_layers: int = Field(0, ge=0)  # freeze embeddings + the first N blocks: faster, less capacity
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: str | None = None
    lora: LoraSettings | None = None  # LoRA adapters instead of full fine-tuning (the head and the new tokens' rows stay as without)


class PoolConfig(BaseModel):
    """Pretraining data: the policy pool (data/policy_pool.py) and how triplets are drawn from it."""

    model_config = ConfigDict(extra="forbid")
    builder: Any = None  # PolicyPoolConfig settings (data/policy_pool.py), e.g. {seed: 1, n_topics: 30}; typed when read
    extra_lms: list[str] = []  # Hugging Face causal LMs that join the pool as training policies
    regenerate: bool = False
    triplets_per_prompt: int = Field(4, ge=1)
    max_train_triplets: int | None = None
    max_eval_triplets: int | None = None

    @model_validator(mode="after")
    def _typed_builder(self):
        from rewardlab.data import registry

        self.builder = registry.typed("policy-trajectories", self.builder, "pool.builder")
        return self


class Config(RecipeBase):
    learner: Literal["polar"] = "polar"
    stage: Literal["pretrain", "finetune"] = "pretrain"
    pool: PoolConfig = PoolConfig()
    data: TextDataConfig = TextDataConfig()  # finetune pairs; and, in both stages, the preference evaluation
    model: PolarModelConfig = PolarModelConfig()
    train: TrainConfig = TrainConfig()


def pool_triplets(cfg: PoolConfig, seed: int):
    from rewardlab.data import find_card, policy_pool

    base = cfg.builder
    if cfg.extra_lms:
        import dataclasses

        extra = tuple(policy_pool.Policy(f"lm:{name}", model=name) for name in cfg.extra_lms)
        base = dataclasses.replace(base, policies=base.policies + extra)
    rows = find_card("policy-trajectories").validate_rows(policy_pool.build(base, regenerate=cfg.regenerate), source="policy-trajectories")
    triplets = policy_pool.make_triplets(rows, cfg.triplets_per_prompt, seed)
    if cfg.max_train_triplets is not None:
        triplets.train = triplets.train[: cfg.max_train_triplets]
    if cfg.max_eval_triplets is not None:
        triplets.eval_prompts = triplets.eval_prompts[: cfg.max_eval_triplets]
        triplets.eval_policies = triplets.eval_policies[: cfg.max_eval_triplets]
    return base, rows, triplets


def reference_pairs(cfg: TextDataConfig, seed: int) -> tuple[list[dict], list[dict], str, list[dict]]:
    """(train, test, source, shifted test) rows with prompt/reference/chosen/rejected. The math builders' pairs get
    verified correct references (another correct sample of the same question and split, else the written-out
    answer); a file of your own brings its references (and has no shifted split)."""
    from rewardlab.data import registry
    from rewardlab.data.loaders import math_builder
    from rewardlab.data.math_answers import with_references

    data = load_preferences(cfg)
    if data.name in registry.names("preferences") and cfg.path is None:
        canonical = math_builder(data.name).canonical_answer
        samples = data.train_samples + data.test_samples

        def refs(pairs, pool):
            return with_references(pairs, pool, seed, canonical)

        return refs(data.train_pairs, samples), refs(data.test_pairs, samples), data.source, refs(data.shifted_pairs, data.shifted_samples)
    missing = [i for i, r in enumerate(data.train_pairs + data.test_pairs) if "reference" not in r]
    if missing:
        raise DataError(f"{data.source}: POLAR fine-tuning needs a 'reference' field (row {missing[0] + 1} has none)")
    return data.train_pairs, data.test_pairs, data.source, []


def tokenize_triplets(rows: list[dict], tokenizer, max_length: int, good: str, bad: str, counts: dict | None = None):
    """chosen_ids = (prompt, reference, row[good]), rejected_ids = (prompt, reference, row[bad]), plus length."""
    return preference_dataset(rows, lambda r, side: encode_triple(tokenizer, r["prompt"], r["reference"], r[side], max_length), good, bad,
                              counts=counts)


def pretrained_folder(cfg: Config):
    """The local folder of ``model.init_from`` (downloaded from MLflow when it is a URI), checked to be a POLAR
    reward; None without ``init_from``."""
    if not cfg.model.init_from:
        return None
    from rewardlab import rewards

    folder = rewards.resolve_folder(cfg.model.init_from)
    if rewards.read_reward_json(folder)["kind"] != "polar":
        raise DataError(f"model.init_from: {cfg.model.init_from} is not a POLAR reward (reward.json kind is not 'polar')")
    return folder


def build_model(cfg: Config, init_folder=None):
    """(model, tokenizer): the pretrained POLAR reward in ``init_folder`` (see ``pretrained_folder``) for
    fine-tuning, else the backbone with the special tokens added, the embeddings resized and a zero-initialised head."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardlab.models.scalar_head import build_scalar_rm, freeze_bottom

    m = cfg.model
    if init_folder is not None:
        tokenizer = AutoTokenizer.from_pretrained(str(init_folder))
        model = AutoModelForSequenceClassification.from_pretrained(str(init_folder), num_labels=1, dtype=getattr(torch, m.dtype))
        freeze_bottom(model, m.freeze_layers)
        return model, tokenizer
    tokenizer = backbones.load_tokenizer(m.backbone)
    model = build_scalar_rm(m.backbone, tokenizer, 0, m.dtype, m.attn_implementation)
    add_polar_tokens(tokenizer, model)
    freeze_bottom(model, m.freeze_layers)  # frozen embeddings keep the new tokens' (distinct) initial vectors
    model.config.pad_token_id = tokenizer.pad_token_id
    check_pooling(model, tokenizer, m.backbone)
    head = model.score
    torch.nn.init.zeros_(head.weight)
    if getattr(head, "bias", None) is not None:
        torch.nn.init.zeros_(head.bias)
    return model, tokenizer


def check_pooling(model, tokenizer, backbone: str) -> None:
    """TRL trains through the model's own forward, which must pool at the last token (the reward token), as
    causal-LM classifiers do. Encoders pool at [CLS]: refuse them with a clear message."""
    import torch

    same = False
    if isinstance(getattr(model, "score", None), torch.nn.Linear):
        ids, _ = encode_triple(tokenizer, "Q?", "A.", "B.", 32)
        x = torch.tensor([ids + [tokenizer.pad_token_id]])
        mask = torch.tensor([[1] * len(ids) + [0]])
        with torch.no_grad():
            hidden = model.base_model(input_ids=x, attention_mask=mask).last_hidden_state[0, len(ids) - 1]
            saved = model.score.weight.detach().clone()
            model.score.weight.copy_(torch.randn_like(saved))
            try:
                same = torch.allclose(model(input_ids=x, attention_mask=mask).logits[0, 0], model.score(hidden)[0], atol=1e-4)
            finally:
                model.score.weight.copy_(saved)
    if not same:
        raise DataError(f"model.backbone: {backbone} does not pool at the last token, so its head cannot read the reward "
                        "token; POLAR needs a causal LM backbone (e.g. embedded:smollm2-135m-instruct)")


def ranked_outcomes(reward: PolarReward, rows: list[dict], good: str, bad: str, scores_out: list | None = None) -> np.ndarray:
    """Per row, 1 if r(prompt, reference, row[good]) > r(prompt, reference, row[bad]), 0.5 on a tie, else 0.

    Discrimination: good="positive", bad="negative" on triplets. Preference accuracy with references:
    good="chosen", bad="rejected" on reference pairs."""
    if not rows:
        return np.zeros(0)
    items = [(r["prompt"], r[good], r["reference"]) for r in rows] + [(r["prompt"], r[bad], r["reference"]) for r in rows]
    scores = score_unique(reward, items)
    if scores_out is not None:
        scores_out.extend(scores.tolist())
    chosen, rejected = scores[: len(rows)], scores[len(rows) :]
    return (chosen > rejected) + 0.5 * (chosen == rejected)


def ranked_accuracy(reward: PolarReward, rows: list[dict], good: str, bad: str) -> float:
    """The mean of ``ranked_outcomes`` (nan without rows)."""
    outcomes = ranked_outcomes(reward, rows, good, bad)
    return float(outcomes.mean()) if len(outcomes) else float("nan")


def _credited(metrics: dict, name: str, rows: list[dict], outcomes: np.ndarray, good: str, bad: str) -> None:
    """``name`` (the discriminator's accuracy on ``rows``), the training-free baselines on the same rows
    (``name`` + ``_tfidf_cosine`` / ``_length_closeness``) and the margin over the better baseline."""
    from rewardlab.rewards.evaluate import reference_baselines

    metrics[name] = float(np.mean(outcomes)) if len(outcomes) else float("nan")
    base = reference_baselines(rows, good, bad)
    for k, v in base.items():
        metrics[f"{name}_{k}"] = v
    metrics[f"{name}_margin_over_baselines"] = metrics[name] - max(base.values()) if rows else float("nan")


def evaluate_polar(reward: PolarReward, triplets, pref_test: list[dict], pref_shifted: list[dict],
                   scores_out: list | None = None) -> dict[str, float]:
    """Discrimination on held-out prompts (by prompt kind too) and held-out policies (by policy too), preference
    accuracy with references on the test and shifted pairs; each beside the training-free baselines. ``scores_out``
    collects the rewards given on the test pairs (on the held-out-prompt triplets when there are no pairs)."""
    metrics: dict[str, float] = {}
    triplet_scores: list = []
    prompts = ranked_outcomes(reward, triplets.eval_prompts, "positive", "negative", triplet_scores)
    _credited(metrics, "discrimination_acc_heldout_prompts", triplets.eval_prompts, prompts, "positive", "negative")
    held = ranked_outcomes(reward, triplets.eval_policies, "positive", "negative")
    _credited(metrics, "discrimination_acc_heldout_policies", triplets.eval_policies, held, "positive", "negative")
    for kind in sorted({r.get("prompt_kind", "") for r in triplets.eval_prompts} - {""}):  # which kinds of prompt it generalises to
        mine = [i for i, r in enumerate(triplets.eval_prompts) if r.get("prompt_kind") == kind]
        _credited(metrics, f"discrimination_acc_heldout_prompts_kind_{kind}", [triplets.eval_prompts[i] for i in mine], prompts[mine],
                  "positive", "negative")
    for policy in sorted({r["policy_a"] for r in triplets.eval_policies}):  # which held-out policies it can tell apart
        mine = [i for i, r in enumerate(triplets.eval_policies) if r["policy_a"] == policy]
        metrics[f"discrimination_acc_heldout_policy_{policy}"] = float(np.mean(held[mine]))
    for prefix, rows in (("", pref_test), ("shifted_", pref_shifted)):
        if not rows:
            continue
        outcomes = ranked_outcomes(reward, rows, "chosen", "rejected", scores_out if prefix == "" else None)
        _credited(metrics, f"{prefix}preference_acc_with_reference", rows, outcomes, "chosen", "rejected")
        # the harder part: pairs whose reference is not the chosen answer word for word
        # (a verified reference is often the chosen answer word for word, which any string match ranks right)
        harder = np.asarray([r["reference"] != r["chosen"] for r in rows])
        _credited(metrics, f"{prefix}preference_acc_reference_not_chosen", [r for r, h in zip(rows, harder) if h], outcomes[harder],
                  "chosen", "rejected")
    if scores_out is not None and not pref_test:
        scores_out.extend(triplet_scores)
    return metrics


def format_polar_report(metrics: dict) -> str:
    """Each accuracy beside its training-free baselines (TF-IDF cosine, length closeness) and the margin."""
    lines = [f"{'':48s} {'POLAR':>7s} {'tf-idf':>7s} {'length':>7s} {'margin':>7s}"]
    for k, v in metrics.items():
        if f"{k}_tfidf_cosine" in metrics:
            lines.append(f"{k:48s} {v:7.3f} {metrics[k + '_tfidf_cosine']:7.3f} {metrics[k + '_length_closeness']:7.3f} "
                         f"{metrics[k + '_margin_over_baselines']:+7.3f}")
    derived = ("_tfidf_cosine", "_length_closeness", "_margin_over_baselines")
    for k, v in metrics.items():
        if f"{k}_tfidf_cosine" not in metrics and not k.endswith(derived):
            lines.append(f"{k:48s} {v:7.3f}" if isinstance(v, float) else f"{k:48s} {v}")
    return "\n".join(lines)


def load(cfg: Config) -> dict:
    """The pool's triplets and the reference pairs (train, test, shifted), both built before the run opens."""
    _, _, triplets = pool_triplets(cfg.pool, cfg.seed)
    train_pairs, test, source, shifted = reference_pairs(cfg.data, cfg.seed)
    return {"triplets": triplets, "train": train_pairs, "test": test, "source": source, "shifted": shifted,
            "init_folder": pretrained_folder(cfg)}


def datasets(cfg: Config, data: dict) -> list:
    from rewardlab.data import find_card

    if cfg.stage == "pretrain":
        out = [DatasetInput(data["triplets"].train, "policy-triplets-train", "training", "policy-trajectories",
                            find_card("policy-trajectories").path)]
    else:
        out = [DatasetInput(data["train"], "reference-pairs-train", "training", data["source"])]
    out.append(DatasetInput(data["test"], "reference-pairs-test", "evaluation", data["source"]))
    if data["shifted"]:
        out.append(DatasetInput(data["shifted"], "reference-pairs-shifted", "evaluation", data["source"]))
    return out


def tags(cfg: Config, data: dict) -> dict:
    return {"stage": cfg.stage}


def fit(cfg: Config, data: dict, job: Job) -> Fitted:
    """Pretrain or fine-tune, then evaluate discrimination and preference accuracy beside the baselines."""
    from transformers import set_seed

    set_seed(cfg.seed)
    model, tokenizer = build_model(cfg, data["init_folder"])
    m = cfg.model
    counts: dict = {}
    if cfg.stage == "pretrain":
        train_rows = data["triplets"].train
        dataset = tokenize_triplets(train_rows, tokenizer, m.max_length, "positive", "negative", counts)
    else:
        train_rows, dataset = data["train"], tokenize_triplets(data["train"], tokenizer, m.max_length, "chosen", "rejected", counts)
    trainer = reward_trainer(model, tokenizer, dataset, cfg.train, job.out / "checkpoints", m.max_length, cfg.seed,
                             [job.run.trainer_callback(), *job.callbacks], lora=m.lora, freeze_layers=m.freeze_layers)
    model, adapter, extra = fit_trainer(trainer, job, counts)
    if model is None:
        return Fitted(None, extra=extra)
    folder = PolarReward.save(model, tokenizer, job.out / "reward", m.max_length, backbone=m.backbone, recipe=cfg.name,
                              stage=cfg.stage, init_from=m.init_from)
    reward = PolarReward(model, tokenizer, m.max_length, batch_size=cfg.train.eval_batch_size)
    scores: list = []
    metrics = {**evaluate_polar(reward, data["triplets"], data["test"], data["shifted"], scores), "train_rows": len(train_rows), **adapter}
    metrics |= normalization_metrics(folder, scores)
    return Fitted(folder, metrics, report=format_polar_report(metrics), step=extra["global_step"], extra=extra)
