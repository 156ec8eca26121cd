"""RLHF recipes on TRL: GRPO or RLOO on math prompts, rewarded by any rewardlab reward (and a verifiable check).

A recipe names its rewards; each becomes a TRL reward function (``rlhf/rewards.py``):

* ``correctness``: 1 when the completion's last number is the true result (verifiable);
* a folder, an MLflow URI (``models:/quickstart-bt/latest``) or a ``rewardlab serve`` URL: the reward's score;
  ``reference_column: reference`` feeds the written-out correct answer to rewards that need references (POLAR);
* ``win_rate: true``: SPO's win rate of each completion against the others of its group, with the preference
  sigma(r_i - r_j) (``preference: bradley_terry``) or POLAR with the other completion as reference; with
  ``source: correctness``, against a noisy correctness oracle that answers the wrong way with ``flip_rate``.

TRL's trainer does the rest, so ``accelerate launch`` scales a recipe. MLflow gets every reward function's curve
(``rewards/<name>/mean``), the KL to the reference policy, a table of sampled completions every
``log_completions_every`` steps, and the held-out accuracy (greedy answers to unseen questions) before and after.
"""

from __future__ import annotations

import json
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rewardlab import backbones
from rewardlab.tracking import RecipeBase, is_main_process, resolve_uri, tracked_run


class LoraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, ge=1)  # rank: higher adapts more, costs more
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


class PolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = backbones.SMOLLM2  # embedded:smollm2-135m-instruct, a hub id or a path
    lora: LoraConfig | None = LoraConfig()  # null: full fine-tuning


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    train_prompts: int = Field(64, ge=1)  # math-answers style questions (addition, subtraction, times tables)
    eval_prompts: int = Field(200, ge=1)  # held-out questions, none of them in the training prompts
    seed: int = 11  # question seed; the math-answers RMs were trained on seed-0 questions


class RewardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str  # "correctness", a reward folder, an MLflow URI or http://host:port
    name: str | None = None  # the curve's name in MLflow; default from the source
    weight: float = 1.0  # TRL's reward_weights: the advantage uses the weighted sum
    reference_column: str | None = None  # "reference": the written-out correct answer (POLAR needs one)
    normalize: bool = False  # whiten the reward with its mean and std measured at training time (reward.json 'normalization')
    win_rate: bool = False  # SPO: the win rate within each group instead of the raw score
    preference: Literal["bradley_terry", "polar"] = "bradley_terry"  # SPO's P(i > j)
    flip_rate: float = Field(0.0, ge=0, le=0.5)  # source correctness + win_rate: the oracle's chance of preferring the wrong one


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    algo: Literal["grpo", "rloo"] = "grpo"
    max_steps: int = Field(30, ge=1)
    # null: 5e-4 with LoRA, 5e-5 for full fine-tuning. Measured (benchmarks/rlhf.py, 30 steps): LoRA at 5e-5 barely moves
    # the policy (KL 0.01, held-out +0.035); at 5e-4 it gains +0.15; full fine-tuning at 5e-5 already reaches KL 0.6.
    learning_rate: float | None = Field(None, gt=0)
    num_generations: int = Field(4, ge=2)  # completions per prompt (a group)
    prompts_per_step: int = Field(2, ge=1)  # prompts per optimiser step (x num_generations completions)
    max_completion_length: int = Field(24, ge=1)  # tokens; an answer sentence needs ~10
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.04, ge=0)  # KL coefficient to the reference policy (0: no reference model, no KL curve)
    logging_steps: int = Field(1, ge=1)
    log_completions_every: int = Field(10, ge=1)  # steps between completion tables in MLflow
    gradient_checkpointing: bool = False


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_new_tokens: int = Field(24, ge=1)
    batch_size: int = Field(16, ge=1)


class Config(RecipeBase):
    learner: Literal["rlhf"] = "rlhf"
    policy: PolicyConfig = PolicyConfig()
    data: DataConfig = DataConfig()
    rewards: list[RewardSpec] = [RewardSpec(source="correctness")]
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()


def math_prompts(cfg: DataConfig) -> tuple[list[dict], list[dict]]:
    """(train rows, held-out rows): {prompt (one user message), answer, reference}, no question in both."""
    from rewardlab.data.math_answers import canonical_answer, make_questions

    seen, rows = set(), []
    for q in make_questions(4 * (cfg.train_prompts + cfg.eval_prompts), cfg.seed):
        if q["question"] not in seen:
            seen.add(q["question"])
            rows.append({"prompt": [{"role": "user", "content": q["question"]}], "answer": float(q["answer"]),
                         "reference": canonical_answer(q["question"])})
    need = cfg.train_prompts + cfg.eval_prompts
    if len(rows) < need:
        raise ValueError(f"data: only {len(rows)} distinct questions for {need} prompts; ask for fewer")
    return rows[: cfg.train_prompts], rows[cfg.train_prompts : need]


def reward_functions(specs: list[RewardSpec], group_size: int, seed: int = 0) -> list:
    from rewardlab.rlhf.rewards import OracleWinRate, correctness_reward, reward_function, win_rate_reward

    funcs = []
    for i, spec in enumerate(specs):
        if spec.source == "correctness":
            if spec.win_rate:  # SPO against a (noisy) correctness oracle
                funcs.append(OracleWinRate(group_size, spec.flip_rate, seed + 1000 * i, name=spec.name or "spo_oracle"))
            elif spec.flip_rate:
                raise ValueError(f"rewards[{i}]: flip_rate applies to the oracle's comparisons; set win_rate: true")
            else:
                funcs.append(correctness_reward)
            continue
        try:
            if spec.win_rate:
                funcs.append(win_rate_reward(spec.source, group_size, spec.preference, name=spec.name or "spo_win_rate"))
            else:
                funcs.append(reward_function(spec.source, spec.name, spec.reference_column, spec.normalize))
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"rewards[{i}].source: {exc}\n  (MLflow store: {resolve_uri()}.) Train the recipe that registers "
                "this reward first, e.g. `rewardlab train recipes/quickstart.yaml` for models:/quickstart-bt, "
                "`recipes/polar_finetune.yaml` for models:/polar-finetune; or set the source to a reward folder or a "
                "`rewardlab serve` URL with --set") from None
    names = [f.__name__ for f in funcs]
    if len(set(names)) != len(names):
        raise ValueError(f"rewards: two rewards share a name ({names}); give each a distinct name:")
    return funcs


def accuracy(model, tokenizer, rows: list[dict], cfg: EvalConfig) -> tuple[float, list[dict]]:
    """Greedy answers to held-out questions: the fraction whose last stated number is the true result."""
    import torch
    from tqdm.auto import tqdm

    from rewardlab.data.math_answers import clean_response, stated_number

    tokenizer.padding_side = "left"
    out = []
    model.eval()
    starts = range(0, len(rows), cfg.batch_size)
    for i in tqdm(starts, desc="held-out answers", unit="batch", leave=False, disable=len(starts) < 4):
        batch = rows[i : i + cfg.batch_size]
        texts = [tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in batch]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            ids = model.generate(**enc, do_sample=False, max_new_tokens=cfg.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        for r, text in zip(batch, tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)):
            answer = clean_response(text)
            out.append({"question": r["prompt"][-1]["content"], "answer": answer, "correct": stated_number(answer) == r["answer"]})
    return sum(o["correct"] for o in out) / len(out), out


def changed_answers(before: list[dict], after: list[dict]) -> dict:
    """Paired counts over the same held-out questions: wrong before and right after (fixed), and the reverse."""
    pairs = list(zip(before, after))
    return {"heldout_fixed": sum(not b["correct"] and a["correct"] for b, a in pairs),
            "heldout_broken": sum(b["correct"] and not a["correct"] for b, a in pairs)}


def curves_figure(history: list[dict], reward_names: list[str], before: float, after: float, n_questions: int):
    """One panel per reward function's mean (thin: per step; thick: running mean of 5), the KL, and the held-out
    accuracy before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = [f"rewards/{n}/mean" for n in reward_names] + ["kl"]
    curves = {k: [(h["step"], float(h[k])) for h in history if k in h and "step" in h] for k in keys}
    curves = {k: v for k, v in curves.items() if v}
    fig, axes = plt.subplots(1, len(curves) + 1, figsize=(3.6 * (len(curves) + 1), 3.4), squeeze=False)
    for ax, (key, points) in zip(axes[0], curves.items()):
        steps, values = map(np.asarray, zip(*points))
        ax.plot(steps, values, lw=0.8, alpha=0.5)
        if len(values) >= 5:
            ax.plot(steps[4:], np.convolve(values, np.ones(5) / 5, mode="valid"), lw=2)
        ax.set(xlabel="step", title=key.removeprefix("rewards/").removesuffix("/mean"))
    ax = axes[0][-1]
    ax.bar(["before", "after"], [before, after], color=["tab:gray", "tab:green"])
    for x, v in enumerate((before, after)):
        ax.text(x, v, f"{v:.3f}", ha="center", va="bottom")
    ax.set(ylim=(0, 1), title=f"held-out accuracy\n({n_questions} questions, greedy)")
    fig.tight_layout()
    return fig


def completions_callback(funcs, run, every: int):
    """Logs the latest batch's prompts, completions and each reward function's rewards as an MLflow table."""
    from transformers import TrainerCallback

    from rewardlab.rlhf.rewards import completion_text

    class CompletionTable(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % every or not state.is_world_process_zero:
                return
            seen = [f for f in funcs if getattr(f, "last", None)]
            if not seen:
                return
            last = seen[0].last
            table = {"step": [state.global_step] * len(last["prompts"]),
                     "prompt": [completion_text(p) for p in last["prompts"]],
                     "completion": [completion_text(c) for c in last["completions"]]}
            for f in seen:
                if len(f.last["rewards"]) == len(last["prompts"]):
                    table[f.__name__] = f.last["rewards"]
            run.log_table(table, f"completions/step_{state.global_step:05d}.json")

    return CompletionTable()


class _Recorded:
    """A plain reward function that keeps its last batch for the completion table (the class-based ones do it)."""

    def __init__(self, func):
        self.func, self.__name__, self.last = func, func.__name__, {}

    def __call__(self, prompts, completions, **kwargs):
        from rewardlab.rlhf.rewards import last_batch

        rewards = self.func(prompts, completions, **kwargs)
        self.last = last_batch(prompts, completions, list(rewards))
        return rewards


def learning_rate(cfg: Config) -> float:
    """The recipe's learning rate, or the default for its kind of fine-tuning (an adapter needs a larger step)."""
    if cfg.train.learning_rate is not None:
        return cfg.train.learning_rate
    return 5e-4 if cfg.policy.lora is not None else 5e-5


def make_trainer(cfg: Config, funcs: list, train_rows: list[dict], tokenizer, callbacks=()):
    import torch
    from datasets import Dataset

    t = cfg.train
    common = dict(
        output_dir=str(cfg.out() / "checkpoints"), use_cpu=not torch.cuda.is_available(), max_steps=t.max_steps,
        learning_rate=learning_rate(cfg), per_device_train_batch_size=t.prompts_per_step * t.num_generations,
        num_generations=t.num_generations, max_completion_length=t.max_completion_length, temperature=t.temperature,
        beta=t.beta, reward_weights=[s.weight for s in cfg.rewards], logging_steps=t.logging_steps,
        gradient_checkpointing=t.gradient_checkpointing, save_strategy="no", report_to="none", seed=cfg.seed,
        bf16=False, dataloader_num_workers=0, log_completions=False,
    )
    if t.algo == "grpo":
        from trl import GRPOConfig as ArgsClass, GRPOTrainer as TrainerClass
    else:
        from trl import RLOOConfig as ArgsClass, RLOOTrainer as TrainerClass
    import dataclasses

    if "activation_checkpointing" in {f.name for f in dataclasses.fields(ArgsClass)}:  # the new name; the old one warns
        common["activation_checkpointing"] = common.pop("gradient_checkpointing")
    peft_config = None
    if cfg.policy.lora is not None:
        from peft import LoraConfig as PeftLora

        lo = cfg.policy.lora
        peft_config = PeftLora(r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout, target_modules=list(lo.target_modules), task_type="CAUSAL_LM")
    model = backbones.load_causal_lm(cfg.policy.model)
    return TrainerClass(model=model, reward_funcs=funcs, args=ArgsClass(**common), train_dataset=Dataset.from_list(train_rows),
                        processing_class=tokenizer, peft_config=peft_config, callbacks=list(callbacks))


def run(cfg: Config, recipe_text: str = "", resume: bool = False, callbacks=()) -> dict:
    """Accuracy before, RL with the recipe's rewards, accuracy after; everything in MLflow."""
    from transformers import set_seed

    if resume:
        from rewardlab.tracking import ResumeError

        raise ResumeError("--resume: rlhf recipes keep no checkpoints to resume from; run the recipe again")
    set_seed(cfg.seed)
    train_rows, eval_rows = math_prompts(cfg.data)
    funcs = [f if hasattr(f, "last") else _Recorded(f) for f in reward_functions(cfg.rewards, cfg.train.num_generations, cfg.seed)]
    tokenizer = backbones.load_tokenizer(cfg.policy.model)
    out = cfg.out()
    with tracked_run(cfg, recipe_text, None, tags={"algo": cfg.train.algo}) as run:
        run.log_dataset(train_rows, "math-prompts-train", None, "training", f"make_questions(seed={cfg.data.seed})")
        run.log_dataset(eval_rows, "math-prompts-heldout", None, "evaluation", f"make_questions(seed={cfg.data.seed})")
        trainer = make_trainer(cfg, funcs, train_rows, tokenizer,
                               [run.trainer_callback(), completions_callback(funcs, run, cfg.train.log_completions_every), *callbacks])
        before, before_rows = accuracy(trainer.model, tokenizer, eval_rows, cfg.eval)
        print(f"held-out accuracy before training: {before:.3f} ({len(eval_rows)} questions)", flush=True)
        run.log_metrics({"eval/heldout_accuracy": before}, step=0)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        after, after_rows = accuracy(trainer.model, tokenizer, eval_rows, cfg.eval)
        step = trainer.state.global_step
        metrics = {"heldout_accuracy_before": before, "heldout_accuracy_after": after, "train_seconds": seconds,
                   **changed_answers(before_rows, after_rows)}
        metrics.update({f"{f.__name__}_observed_flip_rate": f.flipped / f.comparisons for f in funcs
                        if getattr(f, "comparisons", 0)})  # the noisy oracle's realised noise
        run.log_metrics({"eval/heldout_accuracy": after}, step=step)
        run.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=step)
        run.log_table({"question": [r["question"] for r in before_rows], "before": [r["answer"] for r in before_rows],
                       "before_correct": [r["correct"] for r in before_rows], "after": [r["answer"] for r in after_rows],
                       "after_correct": [r["correct"] for r in after_rows]}, "heldout_answers.json")
        run.log_figure(curves_figure(trainer.state.log_history, [f.__name__ for f in funcs], before, after, len(eval_rows)),
                       "plots/learning_curves.png")
        policy_dir = out / "policy"
        trainer.save_model(str(policy_dir))
        tokenizer.save_pretrained(str(policy_dir))
        history = trainer.state.log_history
        if is_main_process():  # under accelerate every rank evaluated; one writes
            (out / "eval.json").write_text(json.dumps({"run_id": run.run_id, **metrics, "log_history": history}, indent=2))
    print(f"held-out accuracy: {before:.3f} before -> {after:.3f} after {step} {cfg.train.algo.upper()} steps "
          f"({metrics['heldout_fixed']} answers fixed, {metrics['heldout_broken']} broken; {seconds:.0f} s); "
          f"policy saved to {policy_dir}", flush=True)
    return {"run_id": run.run_id, "output_dir": str(out), "metrics": metrics, "log_history": history}
