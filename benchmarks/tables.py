"""Print the README's benchmark tables (markdown) from the JSON files in benchmarks/results/.

S2E: each s2e_<domain>*.json (benchmarks/s2e.py) holds the runs of some arms; runs are pooled by arm (and opponent)
across the files given. GAIL: each gail_<task>*.json (benchmarks/gail.py) holds runs of some arms and seeds; they are
pooled by arm. Every number is mean +- std over the seeds found (sample std).

Run:  python benchmarks/tables.py s2e benchmarks/results/s2e_connect4.json
      python benchmarks/tables.py s2e benchmarks/results/s2e_lunarlander_*.json
      python benchmarks/tables.py gail benchmarks/results/gail_idp*.json --plot benchmarks/results/gail_idp.png
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["s2e", "gail"])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--plot", type=Path, default=None, help="also draw the learning curves (mean, band over seeds) as a PNG")
    args = ap.parse_args()
    print((s2e_table if args.kind == "s2e" else gail_table)(args.files))
    if args.plot:
        plot(args.kind, args.files, args.plot)


if __name__ == "__main__":
    main()
