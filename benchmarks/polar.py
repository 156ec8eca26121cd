"""POLAR: does policy-discriminator pretraining help reference-based fine-tuning, and at which data size?

One pretraining run (recipes/polar_pretrain.yaml on the policy pool, whose prompts include arithmetic in the
fine-tuning domain and held-out word problems), then a low-data fine-tuning curve on math-answers pairs with a
verified correct reference (recipes/polar_finetune.yaml): for each size (default 16, 32, 64, 128 pairs and all)
and each seed, two arms on the same pairs, order and head initialisation:

  pretrained   model.init_from = the pretraining run's model
  fresh        model.init_from = null (the paper's no-pretraining ablation)

Each seed draws its own subset of train pairs (data.subset_seed), so the spread covers which pairs a user has.
Every run is scored on the held-out test pairs and on the shifted split (the same questions answered under
another persona and temperature), beside the training-free baselines on the same rows (TF-IDF cosine to the
reference, length closeness); the pretraining run also reports discrimination on held-out prompts (by kind) and
held-out policies with the same baselines. Results are written to benchmarks/results/polar.json after every run.

Run:  python benchmarks/polar.py --seeds 0 1 2                 (~2.5 h on 2 CPU cores; ~45 min of it is the 'all' size)
      python benchmarks/polar.py --seeds 0 --sizes 16 64       (a quicker look)
      python benchmarks/polar.py --seeds 1 2 --append --pretrained models:/polar-pretrain/1   (reuse a pretraining run
                                                                 in the same store: see --store)
      python benchmarks/polar.py --seeds 1 --sizes all --append --pretrained DIR   (fill in one size of a seed; the
                                                                 other recorded sizes and seeds are kept)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import isolated_store, mean_std, previous_rows, seed_sweep_args, train, use_store, write_results

RESULTS = Path(__file__).parent / "results" / "polar.json"
KEYS = ["preference_acc_with_reference", "preference_acc_with_reference_tfidf_cosine", "preference_acc_with_reference_length_closeness",
        "preference_acc_with_reference_margin_over_baselines", "preference_acc_reference_not_chosen"]
KEYS = [*KEYS, *(f"shifted_{k}" for k in KEYS)]


def main() -> int:
    def extra(ap):
        ap.add_argument("--sizes", nargs="+", default=["16", "32", "64", "128", "all"], help="train pairs per run ('all' = every pair)")
        ap.add_argument("--eval-pairs", type=int, default=160, help="held-out pairs scored per split (test and shifted)")
        ap.add_argument("--pretrain-set", action="append", default=[], help="recipe override for the pretraining run only (repeatable)")
        ap.add_argument("--finetune-set", action="append", default=[], help="recipe override for every fine-tuning run (repeatable)")
        ap.add_argument("--pretrained", default=None, help="a pretrained POLAR model URI to start from instead of pretraining")
        ap.add_argument("--store", default=None, help="use this folder's SQLite MLflow store (keeps runs between invocations)")

    args = seed_sweep_args(__doc__, RESULTS, extra)
    overrides = [*args.set, *(f"pretrain:{kv}" for kv in args.pretrain_set), *(f"finetune:{kv}" for kv in args.finetune_set),
                 f"eval_pairs={args.eval_pairs}"]
    # --append keeps every recorded (seed, size) not being run now, so one missing size of a seed can be filled in
    rows = [r for r in previous_rows(_all_seeds(args), overrides) if not (r["seed"] in args.seeds and r["size"] in args.sizes)]
    if args.store:
        Path(args.store).mkdir(parents=True, exist_ok=True)
        use_store(Path(args.store).resolve())
    else:
        isolated_store("rewardlab-polar-bench-")
    old = json.loads(Path(args.out).read_text()) if args.append and Path(args.out).exists() else {}
    pretrain = old.get("pretrain")
    if args.pretrained:
        pretrained_uri = args.pretrained
    else:
        pre = train("polar_pretrain", [*args.set, *args.pretrain_set, "name=bench-polar-pretrain", "tracking.register_model=true"])
        pretrained_uri = pre["model_uri"]
        pretrain = {"seed": 0, "seconds": pre["seconds"], **pre["metrics"]}
        print(json.dumps(pretrain), flush=True)
    for seed in args.seeds:
        for size in args.sizes:
            cap = "null" if size == "all" else size
            for arm, init in (("pretrained", pretrained_uri), ("fresh", "null")):
                tune = [f"seed={seed}", *args.set, *args.finetune_set, "pool.max_eval_triplets=0", f"data.max_train_pairs={cap}",
                        f"data.subset_seed={seed}", f"data.max_eval_pairs={args.eval_pairs}", f"model.init_from={init}",
                        f"name=bench-polar-{arm}-{size}-s{seed}", "tracking.register_model=false"]
                result = train("polar_finetune", tune)
                m = result["metrics"]
                row = {"seed": seed, "size": size, "arm": arm, "train_pairs": m["train_rows"], "seconds": result["seconds"],
                       **{k: m[k] for k in KEYS if k in m}}
                rows.append(row)
                print(json.dumps(row), flush=True)
                summary = summarize(rows, _sizes(rows, args.sizes))
                write_results(args.out, sorted({r["seed"] for r in rows}), overrides, rows, summary)
                extend(args.out, pretrain, pretrained_uri)
    sizes = _sizes(rows, args.sizes)
    print_table(summarize(rows, sizes), sizes)
    return 0


def _sizes(rows: list[dict], asked: list[str]) -> list[str]:
    """Every size with a recorded run, smallest first ('all' last), so a partial rerun keeps the whole summary."""
    have = {r["size"] for r in rows} | set(asked)
    return sorted(have, key=lambda s: (s == "all", int(s) if s != "all" else 0))


def _all_seeds(args):
    """``args`` with no seeds, so previous_rows returns every recorded run (polar.py filters by seed and size)."""
    return argparse.Namespace(**{**vars(args), "seeds": []})


def extend(path: str, pretrain: dict | None, uri: str) -> None:
    data = json.loads(Path(path).read_text())
    data["pretrain"], data["pretrained_model"] = pretrain, uri
    Path(path).write_text(json.dumps(data, indent=2))


def summarize(rows: list[dict], sizes: list[str]) -> dict:
    """Per size and arm, mean +- std over seeds; the pretrained arm's gain, paired by seed."""
    out: dict = {}
    for size in sizes:
        for arm in ("pretrained", "fresh"):
            mine = [r for r in rows if r["size"] == size and r["arm"] == arm]
            if mine:
                out[f"{size}/{arm}"] = {k: mean_std([r[k] for r in mine]) for k in KEYS if k in mine[0]}
        by = {(r["arm"], r["seed"]): r for r in rows if r["size"] == size}
        for k in ("preference_acc_with_reference", "shifted_preference_acc_with_reference"):
            diffs = [by[("pretrained", s)][k] - by[("fresh", s)][k] for (a, s) in by if a == "pretrained" and ("fresh", s) in by
                     and k in by[("pretrained", s)]]
            if diffs:
                out.setdefault(f"{size}/gain", {})[k] = mean_std(diffs)
    return out


def print_table(summary: dict, sizes: list[str]) -> None:
    print("\npreference accuracy with a verified reference, mean +- std over seeds (test | shifted)")
    print(f"  {'pairs':>5s} {'pretrained':>24s} {'fresh':>24s} {'gain':>24s} {'tf-idf':>14s}")
    for size in sizes:
        if f"{size}/pretrained" not in summary or f"{size}/fresh" not in summary:
            continue
        pre, fresh, gain = summary[f"{size}/pretrained"], summary[f"{size}/fresh"], summary.get(f"{size}/gain", {})

        def cell(d, k):
            return f"{d[k]['mean']:.3f}+-{d[k]['std']:.3f}" if k in d else "-"

        print(f"  {size:>5s} {cell(pre, 'preference_acc_with_reference'):>12s}|{cell(pre, 'shifted_preference_acc_with_reference'):<12s}"
              f" {cell(fresh, 'preference_acc_with_reference'):>12s}|{cell(fresh, 'shifted_preference_acc_with_reference'):<12s}"
              f" {cell(gain, 'preference_acc_with_reference'):>12s}|{cell(gain, 'shifted_preference_acc_with_reference'):<12s}"
              f" {pre['preference_acc_with_reference_tfidf_cosine']['mean']:.3f}|{pre.get('shifted_preference_acc_with_reference_tfidf_cosine', {}).get('mean', float('nan')):.3f}")


if __name__ == "__main__":
    sys.exit(main())
