"""Print the README's benchmark tables (markdown) from the JSON files in benchmarks/results/.

S2E: each s2e_<domain>*.json (benchmarks/s2e.py) holds the runs of some arms; runs are pooled by arm (and opponent)
across the files given. GAIL: each gail_<task>*.json (benchmarks/gail.py) holds runs of some arms and seeds; they are
pooled by arm. Every number is mean +- std over the seeds found (sample std).

POLAR (benchmarks/polar.py), goal (benchmarks/goal_rm.py) and rm (benchmarks/rm_training.py) read one file each; rlhf
(benchmarks/rlhf.py) pools runs by arm across the files given.

Run:  python benchmarks/tables.py s2e benchmarks/results/s2e_connect4.json
      python benchmarks/tables.py s2e benchmarks/results/s2e_lunarlander_*.json
      python benchmarks/tables.py gail benchmarks/results/gail_idp*.json --plot benchmarks/results/gail_idp.png
      python benchmarks/tables.py polar benchmarks/results/polar.json --plot benchmarks/results/polar_low_data.png
      python benchmarks/tables.py goal benchmarks/results/goal_rm_steps.json
      python benchmarks/tables.py rm benchmarks/results/rm_training.json
      python benchmarks/tables.py rlhf benchmarks/results/rlhf_spo_oracle_s0.json benchmarks/results/rlhf_grpo_noisy_rm_s0.json \
          benchmarks/results/rlhf_spo_noisy_s1.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def ms(values: list[float], digits: int = 2) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} +- {sd:.{digits}f}"


def s2e_table(paths: list[Path]) -> str:
    groups = defaultdict(list)
    for path in paths:
        for run in json.loads(path.read_text())["runs"]:
            groups[(run["arm"], run["opponent"])].append(run)
    games = any(opp for _, opp in groups)  # Connect 4: a win rate; Lunar Lander has none
    lines = ["| arm | seeds | final true return | area under the curve (mean return over evaluations) |" + (" final win rate |" if games else ""),
             "|---|---|---|---|" + ("---|" if games else "")]
    for (arm, opp), runs in sorted(groups.items(), key=lambda kv: ["none", "s2e", "ground_truth"].index(kv[0][0])):
        final = [r["final_return"] for r in runs]
        auc = [statistics.mean(p["true_return"] for p in r["curve"]) for r in runs]
        wins = [r["curve"][-1]["win_rate"] for r in runs]
        name = arm + (f" vs {opp}" if opp else "")
        lines.append(f"| {name} | {len(runs)} | {ms(final)} | {ms(auc)} |" + (f" {ms(wins)} |" if games else ""))
    return "\n".join(lines)


def gail_table(paths: list[Path]) -> str:
    groups, meta = defaultdict(list), {}
    for path in paths:
        data = json.loads(path.read_text())
        meta = {k: data[k] for k in ("task", "budget", "eval_every", "expert_return", "random_return")}
        for run in data["runs"]:
            groups[run["arm"]].append(run)
    order = ["rewardlab", "rewardlab_no_penalty", "rewardlab_sn_only", "imitation_sac", "imitation_ppo"]
    lines = [f"{meta.get('task')}: budget {meta.get('budget')} steps, evaluated every {meta.get('eval_every')}; expert "
             f"{meta.get('expert_return', float('nan')):.1f}, random {meta.get('random_return', float('nan')):.1f}", "",
             "| arm | seeds | final normalised score | area under the curve | reached 0.9 | mean input-gradient norm of D |",
             "|---|---|---|---|---|---|"]
    for arm in sorted(groups, key=lambda a: order.index(a) if a in order else len(order)):
        runs = groups[arm]
        grads = [r["disc_grad_norm_mean"] for r in runs if r.get("disc_grad_norm_mean") is not None]
        reached = [r["steps_to_target"] for r in runs if r["steps_to_target"] is not None]
        at = f"{len(reached)}/{len(runs)}" + (f" (at {statistics.mean(reached):,.0f} steps)" if reached else "")
        lines.append(f"| {arm} | {len(runs)} | {ms([r['final_score'] for r in runs], 3)} | {ms([r['auc_score'] for r in runs], 3)} | "
                     f"{at} | {ms(grads) if grads else '-'} |")
    return "\n".join(lines)


def polar_table(paths: list[Path]) -> str:
    """Preference accuracy with a verified reference by train-pair count: pretrained vs fresh backbone, test and
    shifted split, the pretrained arm's gain paired by seed, and the TF-IDF-cosine baseline on the same pairs."""
    data = json.loads(paths[0].read_text())
    runs = data["runs"]
    sizes = list(dict.fromkeys(r["size"] for r in runs))
    lines = ["| train pairs | seeds | pretrained (test) | fresh (test) | gain (test) | pretrained (shifted) | fresh (shifted) | "
             "gain (shifted) | TF-IDF cosine (test / shifted) |", "|---|---|---|---|---|---|---|---|---|"]
    for size in sizes:
        by = {(r["arm"], r["seed"]): r for r in runs if r["size"] == size}
        seeds = sorted({s for a, s in by if a == "pretrained" and ("fresh", s) in by})
        if not seeds:
            continue
        cells = []
        for key in ("preference_acc_with_reference", "shifted_preference_acc_with_reference"):
            pre = [by[("pretrained", s)][key] for s in seeds]
            fresh = [by[("fresh", s)][key] for s in seeds]
            cells += [ms(pre, 3), ms(fresh, 3), ms([a - b for a, b in zip(pre, fresh)], 3)]
        tfidf = f"{by[('fresh', seeds[0])]['preference_acc_with_reference_tfidf_cosine']:.3f} / " \
                f"{by[('fresh', seeds[0])]['shifted_preference_acc_with_reference_tfidf_cosine']:.3f}"
        n = by[("fresh", seeds[0])]["train_pairs"]
        lines.append(f"| {n} | {len(seeds)} | " + " | ".join(cells) + f" | {tfidf} |")
    pre = data.get("pretrain") or {}
    if pre:
        lines += ["", "| pretrained model before fine-tuning (held-out sets) | POLAR | TF-IDF cosine | length closeness | margin over the better |",
                  "|---|---|---|---|---|"]
        for k in sorted(k for k in pre if f"{k}_tfidf_cosine" in pre):
            lines.append(f"| {k.replace('discrimination_acc_', '')} | {pre[k]:.3f} | {pre[k + '_tfidf_cosine']:.3f} | "
                         f"{pre[k + '_length_closeness']:.3f} | {pre[k + '_margin_over_baselines']:+.3f} |")
    return "\n".join(lines)


def goal_table(paths: list[Path]) -> str:
    """Goal-conditioned RM vs Bradley-Terry on the same pairs: test and shifted split, the gain paired by seed."""
    data = json.loads(paths[0].read_text())
    runs = data["runs"]
    keys = [("auroc", "reward AUROC"), ("q_auroc_last", "Q AUROC (last token)"), ("q_auroc_min", "min-Q AUROC"),
            ("majority_vote_acc", "majority vote"), ("filtered_majority_vote_acc", "Q-filtered vote"),
            ("filter_tokens_saved", "tokens saved"), ("length_auroc", "length-only AUROC")]
    seeds = sorted({r["seed"] for r in runs if r["arm"] == "goal_conditioned"} & {r["seed"] for r in runs if r["arm"] == "bradley_terry"})
    by = {(r["arm"], r["seed"]): r for r in runs}
    lines = [f"| metric ({len(seeds)} seeds) | Bradley-Terry (test) | goal-conditioned (test) | gain (test) | Bradley-Terry (shifted) | "
             "goal-conditioned (shifted) | gain (shifted) |", "|---|---|---|---|---|---|---|"]
    for key, label in keys:
        cells = []
        for prefix in ("", "shifted_"):
            k = prefix + key
            if not all(k in by[(a, s)] for a in ("bradley_terry", "goal_conditioned") for s in seeds):
                cells += ["-"] * 3
                continue
            bt = [by[("bradley_terry", s)][k] for s in seeds]
            gc = [by[("goal_conditioned", s)][k] for s in seeds]
            cells += [ms(bt, 3), ms(gc, 3), ms([a - b for a, b in zip(gc, bt)], 3)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rm_table(paths: list[Path]) -> str:
    """One table per results file: pairs/s, tokens/s, peak RSS, held-out accuracy, and the packed arm's (else
    rewardlab's) throughput over each arm, paired by seed."""
    out = []
    for path in paths:
        data = json.loads(path.read_text())
        lead = "rewardlab-packed" if "rewardlab-packed" in data["summary"] else "rewardlab"
        dataset = data.get("settings", {}).get("dataset", "math-answers")
        lines = [f"{dataset} (`{path.name}`):", "",
                 f"| arm | seeds | pairs/s | tokens/s | peak RSS (MB) | held-out pair accuracy | {lead} / arm (paired by seed) |",
                 "|---|---|---|---|---|---|---|"]
        for arm, m in data["summary"].items():
            ratio = data["ratios"].get(f"{lead}_vs_{arm}") or data["ratios"].get(f"rewardlab_vs_{arm}")
            tokens = m.get("tokens_per_second") or {}
            lines.append(f"| {arm} | {m['pairs_per_second']['n']} | {m['pairs_per_second']['mean']:.2f} +- {m['pairs_per_second']['std']:.2f} | "
                         + (f"{tokens['mean']:.0f} | " if tokens.get("n") else "- | ")
                         + f"{m['peak_rss_mb']['mean']:.0f} | {m['heldout_pair_accuracy']['mean']:.3f} +- {m['heldout_pair_accuracy']['std']:.3f} | "
                         + (f"{ratio['mean']:.2f}x +- {ratio['std']:.2f}" if ratio and arm != lead else "-") + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def polar_plot(paths: list[Path], target: Path) -> None:
    """Preference accuracy against train pairs (log scale), pretrained vs fresh, test and shifted split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = json.loads(paths[0].read_text())["runs"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (key, title) in zip(axes, (("preference_acc_with_reference", "test split"), ("shifted_preference_acc_with_reference", "shifted split"))):
        for arm in ("pretrained", "fresh"):
            mine = [r for r in runs if r["arm"] == arm and key in r]
            xs = sorted({r["train_pairs"] for r in mine})
            values = [[r[key] for r in mine if r["train_pairs"] == x] for x in xs]
            mean, sd = np.array([np.mean(v) for v in values]), np.array([np.std(v) for v in values])
            ax.plot(xs, mean, marker="o", label=arm)
            ax.fill_between(xs, mean - sd, mean + sd, alpha=0.15)
        baseline = next((r[f"{key}_tfidf_cosine"] for r in runs if f"{key}_tfidf_cosine" in r), None)
        if baseline is not None:  # the training-free ranker on the same pairs
            ax.axhline(baseline, color="k", ls=":", lw=1, label=f"TF-IDF cosine to the reference ({baseline:.3f})")
        ax.set(xscale="log", xlabel="train pairs", title=f"POLAR fine-tuning, {title}")
        ax.legend()
    axes[0].set_ylabel("preference accuracy with reference")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    print(f"wrote {target}")


def curves(kind: str, paths: list[Path]) -> dict[str, list[list[tuple[int, float]]]]:
    """Per arm, each seed's learning curve as (environment steps, value): true return (S2E) or normalised score (GAIL)."""
    out = defaultdict(list)
    for path in paths:
        data = json.loads(path.read_text())
        for run in data["runs"]:
            if kind == "s2e":
                name = run["arm"] + (f" vs {run['opponent']}" if run["opponent"] else "")
                out[name].append([(p["env_steps"], p["true_return"]) for p in run["curve"]])
            else:
                gap = data["expert_return"] - data["random_return"]
                out[run["arm"]].append([(p["env_steps"], (p["true_return"] - data["random_return"]) / gap)
                                        for p in run["curve"] if p["env_steps"] > 0])
    return out


def plot(kind: str, paths: list[Path], target: Path) -> None:
    """Mean learning curve per arm with the band between the seeds' lowest and highest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    for arm, runs in curves(kind, paths).items():
        n = min(len(r) for r in runs)
        steps = [x for x, _ in runs[0][:n]]
        values = np.array([[y for _, y in r[:n]] for r in runs])
        ax.plot(steps, values.mean(0), marker="o", ms=3, label=f"{arm} ({len(runs)} seeds)")
        ax.fill_between(steps, values.min(0), values.max(0), alpha=0.15)
    ax.set(xlabel="environment steps", ylabel="true return" if kind == "s2e" else "normalised score")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    print(f"wrote {target}")


def rlhf_table(paths: list[Path]) -> str:
    """benchmarks/rlhf.py runs pooled by arm across files (each file may hold some arms and seeds)."""
    groups = defaultdict(list)
    for path in paths:
        for run in json.loads(path.read_text())["runs"]:
            groups[run["arm"]].append(run)
    lines = ["| arm | seeds | held-out before | after | gain | fixed / broken | KL at the end |", "|---|---|---|---|---|---|---|"]
    for arm, runs in groups.items():
        col = lambda k, d=3: ms([r[k] for r in runs], d)  # noqa: E731
        lines.append(f"| {arm} | {len(runs)} | {col('before')} | {col('after')} | {col('gain')} | "
                     f"{statistics.mean(r['fixed'] for r in runs):.1f} / {statistics.mean(r['broken'] for r in runs):.1f} | {col('kl_last')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["s2e", "gail", "polar", "goal", "rm", "rlhf"])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--plot", type=Path, default=None, help="also draw the learning curves (mean, band over seeds) as a PNG")
    args = ap.parse_args()
    tables = {"s2e": s2e_table, "gail": gail_table, "polar": polar_table, "goal": goal_table, "rm": rm_table, "rlhf": rlhf_table}
    print(tables[args.kind](args.files))
    if args.plot and args.kind == "polar":
        polar_plot(args.files, args.plot)
    elif args.plot:
        plot(args.kind, args.files, args.plot)


if __name__ == "__main__":
    main()
