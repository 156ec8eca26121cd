"""Off-policy Lipschitz GAIL (rewardlab) against its ablations and the `imitation` library's GAIL, same demos and budget.

Arms, each with the same expert episodes, the same environment-step budget (no early stop: every arm runs it all)
and the same evaluation cadence (--eval-every steps, --eval-episodes deterministic episodes on the true reward):

  rewardlab             the recipe (recipes/gail_idp.yaml by default): SAC; spectral norm on D's hidden layers plus a
                        one-sided wgan gradient penalty (k 1, lambda 10), liayn-pytorch's discriminator settings
  rewardlab_no_penalty  penalty.variant=none, discriminator.spectral_norm=false: nothing keeps D Lipschitz
  rewardlab_sn_only     penalty.variant=none, spectral norm on the hidden layers only
  imitation_sac         imitation's GAIL with an SB3 SAC generator (off-policy, as rewardlab; rewards computed by the
                        discriminator at collection time, imitation's design)
  imitation_ppo         imitation's GAIL with an SB3 PPO generator (its documented setting)

Reported per arm, mean +- std over seeds (uncensored): the final normalised score (R - R_random) / (R_expert -
R_random), the area under the curve (the mean normalised score over all evaluations after step 0), and, for the
rewardlab arms, the discriminator's mean input-gradient norm over time. Steps to a normalised 0.9 is a secondary,
censored column. Results go to benchmarks/results/gail_<task>.json after every run. The imitation arms need their
own virtualenv (it pins older gymnasium and SB3):

  python3 -m venv benchmarks/.venv-imitation
  benchmarks/.venv-imitation/bin/pip install torch==2.13.0      # the CPU build first (GPU users: their CUDA build)
  benchmarks/.venv-imitation/bin/pip install -r benchmarks/imitation-requirements.txt

Run:  python benchmarks/gail.py --seeds 0 1 2 --budget 30000
      python benchmarks/gail.py --arms rewardlab_no_penalty --seeds 0 1 2 --out benchmarks/results/gail_idp_nopen.json
      python benchmarks/gail.py --recipe gail_pendulum --budget 10000 --eval-every 1000    (Pendulum-v1)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import isolated_store, mean_std, train

HERE = Path(__file__).parent
PEER_PYTHON = HERE / ".venv-imitation" / "bin" / "python"
TARGET = 0.9
ARMS = {"rewardlab": [], "rewardlab_no_penalty": ["penalty.variant=none", "discriminator.spectral_norm=false"],
        "rewardlab_sn_only": ["penalty.variant=none", "discriminator.spectral_norm=true"],
        "imitation_sac": None, "imitation_ppo": None}


def measures(curve: list[dict], score) -> dict:
    """Uncensored final score and area under the curve (evaluations after step 0), and the censored first 0.9."""
    points = [p for p in curve if p["env_steps"] > 0]
    scores = [score(p["true_return"]) for p in points]
    first = next((p for p, s in zip(points, scores) if s >= TARGET), None)
    grads = [p["disc_grad_norm"] for p in points if "disc_grad_norm" in p]
    return {"final_score": round(scores[-1], 4), "auc_score": round(float(np.mean(scores)), 4), "best_score": round(max(scores), 4),
            "final_return": points[-1]["true_return"], "evaluated_steps": points[-1]["env_steps"],
            "steps_to_target": first["env_steps"] if first else None,
            "disc_grad_norm_mean": round(float(np.mean(grads)), 4) if grads else None,
            "disc_grad_norm_last": round(grads[-1], 4) if grads else None}


def run_rewardlab(recipe: str, seed: int, args, extra: list[str]) -> dict:
    result = train(recipe, [f"seed={seed}", f"agent.total_steps={args.budget}", f"eval.every={args.eval_every}",
                            f"eval.episodes={args.eval_episodes}", f"demos.episodes={args.episodes}", "eval.stop_at_target=false",
                            "tracking.register_model=false", *extra, *args.set])
    keep = ("env_steps", "train_seconds", "true_return", "disc_grad_norm", "disc_penalty", "disc_accuracy")
    return {"curve": [{k: p[k] for k in keep if k in p} for p in result["curve"]], "wall": result["seconds"]}


# PPO's own settings per task: rl-zoo's Pendulum ones (the peer script's defaults) or, for MuJoCo, SB3's PPO defaults
# (tuned on MuJoCo: gamma 0.99, lr 3e-4, 10 epochs, batch 64), one environment, a 2,000-step round = the eval cadence.
PPO_FLAGS = {"Pendulum-v1": []}
MUJOCO_PPO = ["--gamma", "0.99", "--ppo-lr", "3e-4", "--no-sde", "--n-envs", "1", "--n-steps", "2000"]


def run_imitation(generator: str, env_id: str, seed: int, args, demos_npz: Path) -> dict:
    if not PEER_PYTHON.exists():
        raise SystemExit(f"{PEER_PYTHON} not found: create the imitation virtualenv first (see this script's --help)")
    out = Path(tempfile.mkdtemp(prefix="gail-peer-")) / "result.json"
    start = time.perf_counter()
    subprocess.run([str(PEER_PYTHON), str(HERE / "gail_peer_imitation.py"), "--demos", str(demos_npz), "--env", env_id,
                    "--generator", generator, "--budget", str(args.budget), "--eval-every", str(args.eval_every),
                    "--eval-episodes", str(args.eval_episodes), "--seed", str(seed), "--out", str(out),
                    *(PPO_FLAGS.get(env_id, MUJOCO_PPO) if generator == "ppo" else [])], check=True)
    peer = json.loads(out.read_text())
    curve = [{"env_steps": s, "train_seconds": t, "true_return": r} for s, t, r in peer["curve"]]
    return {"curve": curve, "wall": round(time.perf_counter() - start, 1), "versions": peer.get("versions"), "settings": peer.get("settings")}


def summarize(rows: list[dict], arms: list[str]) -> dict:
    summary = {}
    for arm in arms:
        mine = [r for r in rows if r["arm"] == arm]
        if not mine:
            continue
        s = {"seeds": len(mine)} | {k: mean_std([r[k] for r in mine]) for k in ("final_score", "auc_score", "best_score")}
        if mine[0]["disc_grad_norm_mean"] is not None:
            s["disc_grad_norm_mean"] = mean_std([r["disc_grad_norm_mean"] for r in mine])
        reached = [r["steps_to_target"] for r in mine if r["steps_to_target"] is not None]
        s["reached_target"] = f"{len(reached)}/{len(mine)}"
        s["steps_to_target_reached_mean"] = float(np.mean(reached)) if reached else None
        summary[arm] = s
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="gail_idp", help="the rewardlab recipe (its task's demos are given to every arm)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=30_000, help="environment steps per arm and seed (the same for every arm)")
    ap.add_argument("--episodes", type=int, default=10, help="expert episodes given to every arm")
    ap.add_argument("--eval-every", type=int, default=2_000, help="steps between evaluations, every arm")
    ap.add_argument("--eval-episodes", type=int, default=5)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--set", action="append", default=[], help="override applied to the rewardlab arms (repeatable)")
    ap.add_argument("--out", default=None, help="default: benchmarks/results/gail_<task>.json")
    args = ap.parse_args()

    from rewardlab import recipes
    from rewardlab.data.expert_demos import load_demos

    config, _, _ = recipes.load(args.recipe, args.set)
    demos = load_demos(config.demos.builder).subset(args.episodes)
    task = demos.env_id
    args.out = str(Path(args.out or HERE / "results" / f"gail_{task.split('-')[0].lower()}.json").resolve())
    score = demos.normalized_score
    work = isolated_store("rewardlab-gail-bench-")
    demos_npz = work / "demos.npz"
    demos.to_npz(demos_npz)
    rows = []
    for seed in args.seeds:
        for arm in args.arms:
            if arm.startswith("imitation"):
                res = run_imitation(arm.split("_")[1], task, seed, args, demos_npz)
            else:
                res = run_rewardlab(args.recipe, seed, args, ARMS[arm])
            row = {"arm": arm, "seed": seed, **measures(res["curve"], score), "wall_seconds": res["wall"], "curve": res["curve"]}
            if "settings" in res:
                row |= {"versions": res["versions"], "settings": res["settings"]}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("curve", "settings", "versions")}), flush=True)
            summary = summarize(rows, args.arms)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({
                "task": task, "recipe": args.recipe, "expert_episodes": args.episodes, "budget": args.budget,
                "eval_every": args.eval_every, "eval_episodes": args.eval_episodes, "target_score": TARGET,
                "expert_return": demos.expert_return, "random_return": demos.random_return, "seeds": args.seeds,
                "overrides": args.set, "summary": summary, "runs": rows}, indent=1))  # after every run
    print(f"\n{task}, {args.episodes} expert episodes, budget {args.budget} steps, evaluated every {args.eval_every}")
    for arm, s in summary.items():
        grad = f"  |grad D| {s['disc_grad_norm_mean']['mean']:.2f}" if "disc_grad_norm_mean" in s else ""
        print(f"  {arm:22s} final {s['final_score']['mean']:.3f} +- {s['final_score']['std']:.3f}  AUC {s['auc_score']['mean']:.3f} +- "
              f"{s['auc_score']['std']:.3f}  reached {TARGET}: {s['reached_target']}{grad}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
