"""Off-policy Lipschitz GAIL (rewardlab) against the `imitation` library's GAIL, on the same task and demos.

Arms, each with the same environment-step budget and the same expert episodes:

  rewardlab                 recipes/gail_pendulum.yaml (SAC, wgan one-sided penalty), stopped at the target score
  rewardlab_no_penalty      the same with penalty.variant=none: nothing keeps D Lipschitz (the paper's ablation)
  rewardlab_spectral_norm   penalty.variant=none, discriminator.spectral_norm=true: Lipschitz by construction
                            (not in the default --arms)
  imitation             imitation's GAIL (PPO generator), benchmarks/gail_peer_imitation.py in its own virtualenv

For each arm and seed: environment steps and training wall time until the normalised score
(R - R_random) / (R_expert - R_random) first reaches 0.9 (R is the mean true return of a deterministic evaluation),
or "not reached" with the best return seen. Prints the ratios imitation / rewardlab and writes
benchmarks/results/gail.json. The imitation side needs its own virtualenv (it pins older gymnasium and SB3):

  python3 -m venv benchmarks/.venv-imitation
  benchmarks/.venv-imitation/bin/pip install torch==2.13.0      # the CPU build first (GPU users: their CUDA build)
  benchmarks/.venv-imitation/bin/pip install -r benchmarks/imitation-requirements.txt

Run:  python benchmarks/gail.py --seeds 0 1 2 --budget 100000
      python benchmarks/gail.py --arms rewardlab imitation --seeds 0       (a subset of the arms)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import isolated_store, mean_std, train

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "gail.json"
PEER_PYTHON = HERE / ".venv-imitation" / "bin" / "python"
TARGET = 0.9


def first_reach(curve: list[tuple[int, float, float]], score) -> dict:
    """steps / seconds at the first point of (steps, seconds, return) whose normalised score reaches TARGET."""
    best = max(curve, key=lambda p: p[2])
    out = {"best_return": best[2], "best_score": round(score(best[2]), 4), "evaluated_steps": curve[-1][0]}
    for steps, seconds, ret in curve:
        if score(ret) >= TARGET:
            return {**out, "steps": steps, "seconds": round(seconds, 1), "return": ret}
    return {**out, "steps": None, "seconds": None}


def run_rewardlab(seed: int, budget: int, args, extra: list[str]) -> dict:
    result = train("gail_pendulum", [f"seed={seed}", f"agent.total_steps={budget}", f"eval.every={args.eval_every}",
                                     f"eval.episodes={args.eval_episodes}", f"demos.episodes={args.episodes}",
                                     "eval.stop_at_target=true", *extra])
    return {"curve": [(p["env_steps"], p["train_seconds"], p["true_return"]) for p in result["curve"]], "wall": result["seconds"]}


def run_imitation(seed: int, budget: int, args, demos_npz: Path) -> dict:
    if not PEER_PYTHON.exists():
        raise SystemExit(f"{PEER_PYTHON} not found: create the imitation virtualenv first (see this script's --help)")
    out = Path(tempfile.mkdtemp(prefix="gail-peer-")) / "result.json"
    start = time.perf_counter()
    subprocess.run([str(PEER_PYTHON), str(HERE / "gail_peer_imitation.py"), "--demos", str(demos_npz), "--env", "Pendulum-v1",
                    "--budget", str(budget), "--eval-every", str(args.peer_eval_every), "--eval-episodes", str(args.eval_episodes),
                    "--seed", str(seed), "--out", str(out)], check=True)
    peer = json.loads(out.read_text())
    return {"curve": [tuple(p) for p in peer["curve"]], "wall": round(time.perf_counter() - start, 1), "versions": peer.get("versions")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=100_000, help="environment steps per arm and seed (the same for every arm)")
    ap.add_argument("--episodes", type=int, default=10, help="expert episodes given to every arm")
    ap.add_argument("--eval-every", type=int, default=1_000, help="rewardlab arms: steps between evaluations")
    ap.add_argument("--peer-eval-every", type=int, default=5_000, help="imitation: steps between evaluations (a multiple of its 2,500-step GAIL round)")
    ap.add_argument("--eval-episodes", type=int, default=5)
    ap.add_argument("--ablation-budget", type=int, default=None, help="a smaller budget for the ablation arms (default: --budget)")
    ap.add_argument("--arms", nargs="+", default=["rewardlab", "rewardlab_no_penalty", "imitation"],
                    choices=["rewardlab", "rewardlab_no_penalty", "rewardlab_spectral_norm", "imitation"])
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    args.out = str(Path(args.out).resolve())  # before isolated_store changes the working directory

    from rewardlab.data.expert_demos import ExpertDemosConfig, load_demos

    demos = load_demos(ExpertDemosConfig()).subset(args.episodes)
    score = demos.normalized_score
    work = isolated_store("rewardlab-gail-bench-")
    demos_npz = work / "demos.npz"
    demos.to_npz(demos_npz)
    rows = []
    for seed in args.seeds:
        for arm in args.arms:
            if arm == "imitation":
                res = run_imitation(seed, args.budget, args, demos_npz)
            else:
                budget = (args.ablation_budget or args.budget) if arm != "rewardlab" else args.budget
                extra = {"rewardlab": [], "rewardlab_no_penalty": ["penalty.variant=none"],
                         "rewardlab_spectral_norm": ["penalty.variant=none", "discriminator.spectral_norm=true"]}[arm]
                res = run_rewardlab(seed, budget, args, extra)
            row = {"arm": arm, "seed": seed, **first_reach(res["curve"], score), "wall_seconds": res["wall"], "curve": res["curve"]}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
    summary = summarize(rows, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"task": "Pendulum-v1", "expert_episodes": args.episodes, "budget": args.budget,
                                          "target_score": TARGET, "expert_return": demos.expert_return,
                                          "random_return": demos.random_return, "seeds": args.seeds, "summary": summary,
                                          "runs": rows}, indent=1))
    print(f"wrote {args.out}")
    return 0


def summarize(rows: list[dict], args) -> dict:
    summary = {}
    print(f"\nPendulum-v1, {args.episodes} expert episodes, budget {args.budget} steps, target normalised score {TARGET}")
    for arm in args.arms:
        mine = [r for r in rows if r["arm"] == arm]
        reached = [r for r in mine if r["steps"] is not None]
        s = {"reached": f"{len(reached)}/{len(mine)}", "best_score": mean_std([r["best_score"] for r in mine])}
        if reached:
            s |= {"steps": mean_std([r["steps"] for r in reached]), "seconds": mean_std([r["seconds"] for r in reached])}
        summary[arm] = s
        what = (f"steps {s['steps']['mean']:.0f} +- {s['steps']['std']:.0f}, train seconds {s['seconds']['mean']:.0f} +- {s['seconds']['std']:.0f}"
                if reached else "not reached")
        print(f"  {arm:22s} reached {s['reached']}: {what}; best normalised score {s['best_score']['mean']:.3f}")
    ours = summary.get("rewardlab", {})
    peer = summary.get("imitation", {})
    if "steps" in ours and peer:
        if "steps" in peer:
            summary["ratio_steps"] = round(peer["steps"]["mean"] / ours["steps"]["mean"], 2)
            summary["ratio_seconds"] = round(peer["seconds"]["mean"] / ours["seconds"]["mean"], 2)
            print(f"  imitation / rewardlab: {summary['ratio_steps']}x the environment steps, {summary['ratio_seconds']}x the time")
        else:  # the peer never reached the target: its budget is a lower bound on the steps it needs
            summary["ratio_steps_at_least"] = round(args.budget / ours["steps"]["mean"], 2)
            print(f"  imitation did not reach {TARGET} within {args.budget} steps: at least {summary['ratio_steps_at_least']}x "
                  "the environment steps of rewardlab")
    return summary


if __name__ == "__main__":
    sys.exit(main())
