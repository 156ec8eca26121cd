"""RLHF recipes over seeds, and rewardlab's recipe job against bare TRL on the same work.

Every arm trains the embedded SmolLM2-135M-Instruct with LoRA on the same 64 arithmetic prompts (data.seed 11) and
is scored on the same held-out questions, greedy, before and after training:

  grpo_math     recipes/grpo_math.yaml: GRPO, correctness (weight 1) + the quickstart Bradley-Terry RM (0.5)
  spo_math      recipes/spo_math.yaml: GRPO on SPO win rates from the quickstart RM (correctness logged, weight 0)
  correctness   grpo_math with the correctness reward alone: does the RM add anything to the verifiable reward?
  trl_peer      the peer: a bare TRL GRPOTrainer + peft script, a plain correctness function, no MLflow, same
                settings and seed as `correctness`; its train time over `correctness`'s is rewardlab's overhead
  rloo_math     grpo_math with train.algo=rloo
  full_ft       grpo_math with policy.lora=null (full fine-tuning; a second copy of the model is the KL reference)
  spo_oracle    SPO's claim: GRPO on SPO win rates from a noisy preference oracle (each pair of a group compared
                once; the correct answer preferred, but the wrong way round with --flip-rate, a coin between equals)
  grpo_noisy_rm its peer: GRPO on a Bradley-Terry RM fitted to the same oracle's comparisons (quickstart.yaml with
                data.label_flip_rate = --flip-rate, registered as quickstart-bt-noisy); correctness logged, weight 0

Reported per run: held-out accuracy before and after, the held-out questions fixed and broken (paired: the same
questions before and after), the sampled completions' correctness over the first and the last 10 steps, the final
KL, train seconds and seconds per step. The summary gives mean +- std over seeds and the overhead ratio.

The learned rewards need models:/quickstart-bt in the store. Without --store the benchmark makes a temporary store
and trains recipes/quickstart.yaml in it first (about 8 minutes on 2 cores); --store DIR reuses a folder whose
mlflow.db already has it (runs land there too).

Run:  python benchmarks/rlhf.py --arms grpo_math correctness trl_peer --seeds 0 1 2
      python benchmarks/rlhf.py --arms spo_math rloo_math full_ft --seeds 0 --out benchmarks/results/rlhf_more.json
      (each run is 8-12 minutes on 2 CPU cores; two benchmarks side by side want OMP_NUM_THREADS=1 each)
Writes benchmarks/results/rlhf.json (or --out).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from common import isolated_store, mean_std, train, use_store, write_results

RESULTS = Path(__file__).parent / "results" / "rlhf.json"
ARMS = {
    "grpo_math": ("grpo_math", []),
    "spo_math": ("spo_math", []),
    "correctness": ("grpo_math", ["rewards=[{source: correctness}]"]),
    "trl_peer": ("grpo_math", ["rewards=[{source: correctness}]"]),
    "rloo_math": ("grpo_math", ["train.algo=rloo"]),
    "full_ft": ("grpo_math", ["policy.lora=null"]),
    "spo_oracle": ("grpo_math", [("rewards=[{source: correctness, win_rate: true, flip_rate: FLIP, name: spo_oracle}, "
                                  "{source: correctness, weight: 0.0}]")]),
    "grpo_noisy_rm": ("grpo_math", [("rewards=[{source: models:/quickstart-bt-noisy/latest, name: noisy_rm}, "
                                     "{source: correctness, weight: 0.0}]")]),
}
NEEDS_RM = {"grpo_math", "spo_math", "rloo_math", "full_ft"}
NEEDS_NOISY_RM = {"grpo_noisy_rm"}
WINDOW = 10  # steps averaged at the start and the end of the sampled-correctness curve


def peer(recipe: str, overrides: list[str]) -> dict:
    """The same run as the `correctness` arm, written as a user of TRL alone would: GRPOTrainer, peft's LoRA, a
    plain reward function. rewardlab only supplies the prompts, the embedded model and the held-out scoring."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import set_seed
    from trl import GRPOConfig, GRPOTrainer

    from rewardlab import backbones, recipes
    from rewardlab.data.math_answers import stated_number
    from rewardlab.rlhf.train import accuracy, changed_answers, learning_rate, math_prompts

    cfg, _, _ = recipes.load(recipe, overrides)
    t, lo = cfg.train, cfg.policy.lora
    set_seed(cfg.seed)
    train_rows, eval_rows = math_prompts(cfg.data)

    def correctness(prompts, completions, answer, **kwargs):
        return [float(stated_number(c[-1]["content"]) == a) for c, a in zip(completions, answer)]

    args = GRPOConfig(output_dir=str(Path("peer-out")), use_cpu=not torch.cuda.is_available(), max_steps=t.max_steps,
                      learning_rate=learning_rate(cfg), per_device_train_batch_size=t.prompts_per_step * t.num_generations,
                      num_generations=t.num_generations, max_completion_length=t.max_completion_length,
                      temperature=t.temperature, beta=t.beta, logging_steps=1, save_strategy="no", report_to="none",
                      seed=cfg.seed, bf16=False, gradient_checkpointing=t.gradient_checkpointing)  # TRL's default is on
    tokenizer = backbones.load_tokenizer(cfg.policy.model)
    trainer = GRPOTrainer(model=backbones.load_causal_lm(cfg.policy.model), reward_funcs=[correctness], args=args,
                          train_dataset=Dataset.from_list(train_rows), processing_class=tokenizer,
                          peft_config=LoraConfig(r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout,
                                                 target_modules=list(lo.target_modules), task_type="CAUSAL_LM"))
    start = time.perf_counter()
    before, before_rows = accuracy(trainer.model, tokenizer, eval_rows, cfg.eval)
    train_start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - train_start
    after, after_rows = accuracy(trainer.model, tokenizer, eval_rows, cfg.eval)
    metrics = {"heldout_accuracy_before": before, "heldout_accuracy_after": after, "train_seconds": train_seconds,
               **changed_answers(before_rows, after_rows)}
    return {"metrics": metrics, "log_history": trainer.state.log_history, "seconds": round(time.perf_counter() - start, 1)}


def curve_ends(history: list[dict], key: str) -> tuple[float | None, float | None]:
    values = [float(h[key]) for h in history if key in h]
    if not values:
        return None, None
    return statistics.mean(values[:WINDOW]), statistics.mean(values[-WINDOW:])


def row_of(arm: str, seed: int, result: dict) -> dict:
    m, history = result["metrics"], result["log_history"]
    steps = max((h.get("step", 0) for h in history), default=0)  # TRL stamps every log entry with its step
    first, last = curve_ends(history, "rewards/correctness/mean")
    return {"arm": arm, "seed": seed, "before": m["heldout_accuracy_before"], "after": m["heldout_accuracy_after"],
            "gain": m["heldout_accuracy_after"] - m["heldout_accuracy_before"], "fixed": m["heldout_fixed"],
            "broken": m["heldout_broken"], "sampled_correct_first": first, "sampled_correct_last": last,
            "kl_last": curve_ends(history, "kl")[1], "train_seconds": round(m["train_seconds"], 1),
            "seconds_per_step": round(m["train_seconds"] / max(steps, 1), 2), "seconds": result["seconds"]}


def summarise(rows: list[dict]) -> dict:
    summary = {}
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = [r for r in rows if r["arm"] == arm]
        summary[arm] = {k: mean_std([r[k] for r in mine]) for k in
                        ("before", "after", "gain", "fixed", "broken", "sampled_correct_first", "sampled_correct_last",
                         "train_seconds", "seconds_per_step") if all(r[k] is not None for r in mine)}
        summary[arm]["runs"] = len(mine)
    if "correctness" in summary and "trl_peer" in summary:
        pairs = [(a, b) for a in rows if a["arm"] == "correctness" for b in rows if b["arm"] == "trl_peer" and b["seed"] == a["seed"]]
        if pairs:
            summary["overhead_vs_trl"] = mean_std([a["train_seconds"] / b["train_seconds"] for a, b in pairs])
    return summary


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=["grpo_math", "spo_math", "correctness", "trl_peer"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", action="append", default=[], help="recipe override applied to every arm (repeatable)")
    ap.add_argument("--store", help="a folder whose mlflow.db has models:/quickstart-bt (skips training it)")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--flip-rate", type=float, default=0.2, help="the noisy oracle's chance of preferring the wrong answer")
    args = ap.parse_args()
    out = str(Path(args.out).resolve())

    if args.store:
        store = Path(args.store).resolve()
        if not (store / "mlflow.db").exists():
            raise SystemExit(f"--store: {store / 'mlflow.db'} does not exist")
        use_store(store)
    else:
        isolated_store("rewardlab-rlhf-bench-")
    if NEEDS_RM & set(args.arms) and not args.store:
        print("training the quickstart RM (models:/quickstart-bt) first", flush=True)
        train("quickstart", [])
    noisy_rm = None
    if NEEDS_NOISY_RM & set(args.arms):
        from rewardlab import tracking

        if "quickstart-bt-noisy" not in {m["name"] for m in tracking.registered_models()}:
            print(f"training the Bradley-Terry RM on the oracle's comparisons (flip rate {args.flip_rate}) first", flush=True)
            fitted = train("quickstart", [f"data.label_flip_rate={args.flip_rate}", "name=quickstart-bt-noisy"])
            noisy_rm = {"flip_rate": args.flip_rate, **{k: fitted["metrics"][k] for k in ("pair_accuracy", "auroc", "shifted_auroc")
                                                        if k in fitted["metrics"]}}
            print(json.dumps({"noisy_rm": noisy_rm}), flush=True)

    rows = []
    for seed in args.seeds:
        for arm in args.arms:
            recipe, extra = ARMS[arm]
            extra = [e.replace("FLIP", str(args.flip_rate)) for e in extra]
            overrides = [f"seed={seed}", f"name=bench-{arm}-s{seed}", f"output_dir=runs/bench-{arm}-s{seed}", *args.set, *extra]
            result = peer(recipe, overrides) if arm == "trl_peer" else train(recipe, overrides)
            rows.append(row_of(arm, seed, result))
            print(json.dumps(rows[-1]), flush=True)
            write_results(out, args.seeds, [*args.set, f"flip_rate={args.flip_rate}"], rows,
                          {**summarise(rows), "noisy_rm": noisy_rm})  # after every run: a long sweep keeps its rows

    summary = summarise(rows)
    print(f"\nheld-out accuracy (greedy), {len(args.seeds)} seed(s), mean +- std")
    for arm in args.arms:
        s = summary[arm]
        print(f"  {arm:12s} {s['before']['mean']:.3f} -> {s['after']['mean']:.3f} +- {s['after']['std']:.3f}"
              f"  (fixed {s['fixed']['mean']:.1f}, broken {s['broken']['mean']:.1f});"
              f" {s['seconds_per_step']['mean']:.1f} s/step")
    if "overhead_vs_trl" in summary:
        print(f"  rewardlab `correctness` train time / bare TRL: {summary['overhead_vs_trl']['mean']:.3f}x")
    write_results(out, args.seeds, [*args.set, f"flip_rate={args.flip_rate}"], rows, {**summary, "noisy_rm": noisy_rm})
    return 0


if __name__ == "__main__":
    sys.exit(main())
