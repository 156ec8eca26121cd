"""LoRA reward models: only the adapters and the head train; the saved reward is the merged model, which loads
through rewards.load and as a plain transformers AutoModelForSequenceClassification with the same scores; a
crashed LoRA run resumes in the same MLflow run."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback

from rewardlab import backbones, learners, recipes, rewards, tracking
from rewardlab.data import load_preferences
from rewardlab.rewards.text import encode

LORA = ["model.backbone=embedded:minilm-l6", "model.freeze_layers=4", "model.max_length=64", "model.lora={r: 4, alpha: 8, dropout: 0.0}",
        "data.max_train_pairs=32", "data.max_eval_pairs=16", "data.max_eval_samples=16", "train.batch_size=8",
        "train.learning_rate=1.0e-3", "train.warmup_ratio=0", "train.logging_steps=1", "train.eval_batch_size=16"]


@pytest.fixture(scope="module")
def trained(module_workdir):
    config, text, _ = recipes.load("quickstart", [*LORA, "train.epochs=2", "name=bt-lora"])
    return config, learners.train(config, recipe_text=text)


def test_only_the_adapters_of_the_unfrozen_blocks_and_the_head_change(trained):
    config, result = trained
    base = AutoModelForSequenceClassification.from_pretrained(backbones.resolve(config.model.backbone), num_labels=1)
    tuned = AutoModelForSequenceClassification.from_pretrained(f"{result['output_dir']}/reward", num_labels=1)
    before, after = dict(base.named_parameters()), dict(tuned.named_parameters())
    changed = {n for n in after if n in before and not torch.equal(before[n], after[n])}
    # peft's default LoRA targets on BERT are query and value; freeze_layers=4 of 6 leaves blocks 4 and 5
    assert {n for n in changed if "encoder" in n} == {f"bert.encoder.layer.{i}.attention.self.{m}.weight" for i in (4, 5) for m in ("query", "value")}
    # the head trains in full (its bias gets no gradient: the Bradley-Terry loss sees only r_chosen - r_rejected)
    assert "classifier.weight" in changed and "classifier.bias" not in changed
    m = result["metrics"]
    assert m["lora_trainable_params"] == 2 * 2 * (4 * 384 + 384 * 4) + 384 + 1  # 4 adapters (A: 4x384, B: 384x4) + head


def test_the_saved_reward_loads_as_a_plain_transformers_classifier_with_the_same_scores(trained):
    config, result = trained
    folder = f"{result['output_dir']}/reward"
    reward = rewards.load(result["model_uri"])
    pairs = load_preferences(config.data).test_pairs[:6]
    prompts, answers = [p["prompt"] for p in pairs], [p["chosen"] for p in pairs]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1).eval()
    with torch.no_grad():
        logits = [float(model(input_ids=torch.tensor([encode(tokenizer, p, a, config.model.max_length, config.model.template)[0]])).logits[0, 0])
                  for p, a in zip(prompts, answers)]
    assert reward.score(prompts, answers) == pytest.approx(logits, abs=1e-4)


class CrashAt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise RuntimeError("simulated crash at step 3")


def test_a_crashed_lora_run_resumes_in_the_same_run(workdir):
    config, text, _ = recipes.load("quickstart", [*LORA, "train.max_steps=4", "train.save_steps=2", "name=bt-lora-resume"])
    with pytest.raises(RuntimeError, match="simulated crash"):
        learners.train(config, recipe_text=text, callbacks=[CrashAt()])
    run_id = json.loads((config.out() / "run.json").read_text())["run_id"]
    assert (config.out() / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors").exists()  # the adapter, not the backbone
    resumed = learners.train(config, recipe_text=text, resume=True)
    assert resumed["run_id"] == run_id and resumed["global_step"] == 4
    assert [s for s, _ in tracking.metric_history(run_id, "loss")] == [1, 2, 3, 4]


def test_goal_and_polar_learners_train_lora_adapters_on_smollm2(workdir):
    """The goal-conditioned term reads the hidden states under peft's copy of the head; POLAR trains adapters
    beside its new special tokens. Each saves a merged reward that scores like the in-memory one."""
    small = ["model.freeze_layers=28", "model.lora={r: 4, alpha: 8, dropout: 0.0}", "train.batch_size=4", "train.max_steps=3",
             "train.logging_steps=1", "train.learning_rate=1e-3", "tracking.register_model=false"]
    goal_cfg, text, _ = recipes.load("goal_rm", [*small, "data.max_train_pairs=12", "data.max_eval_pairs=8", "data.max_eval_samples=12",
                                                 "name=goal-lora"])
    goal = learners.train(goal_cfg, recipe_text=text)
    assert [h["contrastive_loss"] for h in goal["log_history"] if "contrastive_loss" in h]  # the term was computed
    # SmolLM2's top 2 of 30 blocks adapted on q_proj (576 -> 576) and v_proj (576 -> 192, 3 KV heads), r 4, + the head
    assert goal["metrics"]["lora_trainable_params"] == 2 * (4 * (576 + 576) + 4 * (576 + 192)) + 576
    polar_cfg, text, _ = recipes.load("polar_pretrain", [*small, "model.max_length=128", "pool.builder.n_topics=12", "pool.builder.n_arithmetic=8",
                                                         "pool.builder.n_reasoning=4", "pool.max_eval_triplets=8", "data.max_eval_pairs=8",
                                                         'pool.builder.policies=[{id: template-bot, kind: template}, {id: bigram, kind: bigram}, {id: template-2, kind: template}]',
                                                         "pool.builder.held_out_policies=[template-2]", "name=polar-lora"])
    polar = learners.train(polar_cfg, recipe_text=text)
    assert polar["metrics"]["lora_trainable_params"] > 0
    reward = rewards.load(f"{polar['output_dir']}/reward")
    assert len(set(reward.score(["What is 2 + 3?"] * 2, ["5", "7"], ["2 + 3 = 5."] * 2))) == 2
