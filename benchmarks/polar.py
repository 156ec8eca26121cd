"""POLAR three-way comparison on one eval set: Bradley-Terry baseline, POLAR without pretraining, POLAR.

All three are trained on the same math-answers train pairs and scored on the same held-out pairs:

  bradley_terry        recipes/quickstart.yaml: r(prompt, response), no reference
  polar_no_pretrain    recipes/polar_finetune.yaml with model.init_from=null (the paper's ablation)
  polar                recipes/polar_pretrain.yaml, then recipes/polar_finetune.yaml from that run's model

The POLAR arms read a verified correct reference for each pair (see data.math_answers.with_references); the
BT arm reads none. Each seed changes the training seed of every arm (head init, data order, triplet draws).
Prints accuracy per arm as mean +- std over seeds, and POLAR's held-out discrimination accuracy; writes
benchmarks/results/polar.json. Every run lands in a temporary SQLite MLflow store.

Run:  python benchmarks/polar.py --seeds 0 1 2        (~45 minutes a seed on 2 CPU cores, ~3 on an H200; results are written after each seed)
      python benchmarks/polar.py --seeds 2 --append    (adds seed 2 to the seeds already in the results file)
      python benchmarks/polar.py --seeds 0 --set train.max_steps=20      (overrides go to every arm)
      python benchmarks/polar.py --pretrain-set pool.max_eval_triplets=null   (to the pretraining run only: here,
                                                            discrimination on every held-out triplet, not the recipe's subset)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common import isolated_store, mean_std, previous_rows, seed_sweep_args, train, write_results

RESULTS = Path(__file__).parent / "results" / "polar.json"


def main() -> int:
    def extra(ap):
        ap.add_argument("--pretrain-set", action="append", default=[], help="recipe override for the pretraining run only (repeatable)")
        ap.add_argument("--finetune-set", action="append", default=[],
                        help="recipe override for both POLAR fine-tuning arms, with and without pretraining (repeatable)")

    args = seed_sweep_args(__doc__, RESULTS, extra)
    overrides = [*args.set, *(f"pretrain:{kv}" for kv in args.pretrain_set), *(f"finetune:{kv}" for kv in args.finetune_set)]
    rows = previous_rows(args, overrides)
    isolated_store("rewardlab-polar-bench-")
    for seed in args.seeds:
        shared = [f"seed={seed}", *args.set]
        bt = train("quickstart", [*shared, f"name=bench-bt-s{seed}"])
        pre = train("polar_pretrain", [*shared, *args.pretrain_set, f"name=bench-polar-pretrain-s{seed}"])
        # the fine-tuned arms are compared on preference pairs only: skip their discrimination eval (~2 min each)
        tune = [*shared, *args.finetune_set, "pool.max_eval_triplets=0"]
        tuned = train("polar_finetune", [*tune, f"name=bench-polar-s{seed}", f"model.init_from={pre['model_uri']}"])
        fresh = train("polar_finetune", [*tune, f"name=bench-polar-nopre-s{seed}", "model.init_from=null"])
        row = {
            "seed": seed,
            "bradley_terry": bt["metrics"]["pair_accuracy"],
            "polar_no_pretrain": fresh["metrics"]["preference_acc_with_reference"],
            "polar": tuned["metrics"]["preference_acc_with_reference"],
            "polar_no_pretrain_reference_not_chosen": fresh["metrics"]["preference_acc_reference_not_chosen"],
            "polar_reference_not_chosen": tuned["metrics"]["preference_acc_reference_not_chosen"],
            "polar_pretrain_zero_shot": pre["metrics"]["preference_acc_with_reference"],
            "discrimination_heldout_prompts": pre["metrics"]["discrimination_acc_heldout_prompts"],
            "discrimination_heldout_policies": pre["metrics"]["discrimination_acc_heldout_policies"],
            **{k.replace("discrimination_acc_", "discrimination_"): v for k, v in pre["metrics"].items()
               if k.startswith("discrimination_acc_heldout_policy_")},
            "seconds": {"bradley_terry": bt["seconds"], "polar_pretrain": pre["seconds"], "polar_finetune": tuned["seconds"],
                        "polar_no_pretrain": fresh["seconds"]},
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        summarize(rows, args.out, overrides)  # after every seed: a long sweep keeps what it finished
    return 0


def summarize(rows: list[dict], out: str, overrides: list[str]) -> None:
    keys = ["bradley_terry", "polar_no_pretrain", "polar", "polar_no_pretrain_reference_not_chosen", "polar_reference_not_chosen",
            "polar_pretrain_zero_shot", "discrimination_heldout_prompts", "discrimination_heldout_policies",
            *sorted(k for k in rows[0] if k.startswith("discrimination_heldout_policy_"))]
    summary = {k: mean_std([r[k] for r in rows]) for k in keys}
    print(f"\nheld-out math-answers pairs, {len(rows)} seed(s): pairwise accuracy, mean +- std")
    for k in keys:
        print(f"  {k:34s} {summary[k]['mean']:.3f} +- {summary[k]['std']:.3f}")
    write_results(out, sorted(r["seed"] for r in rows), overrides, rows, summary)


if __name__ == "__main__":
    sys.exit(main())
