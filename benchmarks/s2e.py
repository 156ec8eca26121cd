"""S2E shaping against no shaping and ground-truth concept shaping: environment steps to a return threshold.

For one domain, runs its recipe (recipes/s2e_<domain>.yaml) with several seeds: the embedding is trained once
(seed ``--embedding-seed``), then every arm (none, s2e, ground_truth) and, for Connect 4, every opponent (random,
lookahead) trains an SB3 agent per seed with the same budget, evaluated on the environment's true reward. An arm
stops at the first evaluation that reaches the target return (rl.stop_at_target), so "steps to target" is what it
measures; a seed that never reaches it counts as the whole budget in the censored mean. Also reported: the mean
true return over all evaluations (the area under the learning curve) and the final return.

Prints, per opponent, the steps each arm needed and the ratio none / arm (above 1: the arm learned faster), and
writes benchmarks/results/s2e_<domain>.json.

Run:  python benchmarks/s2e.py --domain connect4 --seeds 0 1 2
      python benchmarks/s2e.py --domain lunarlander --seeds 0 1 2 --set rl.total_steps=150000
"""

from __future__ import annotations

from pathlib import Path

from common import isolated_store, seed_sweep_args, train, write_results

HERE = Path(__file__).parent


def main() -> None:
    def extra(ap):
        ap.add_argument("--domain", choices=["connect4", "lunarlander"], default="connect4")
        ap.add_argument("--embedding-seed", type=int, default=0)

    args = seed_sweep_args(__doc__, HERE / "results" / "s2e_DOMAIN.json", extra)
    if "DOMAIN" in Path(args.out).name:
        args.out = str(Path(args.out).with_name(f"s2e_{args.domain}.json"))
    isolated_store("rewardlab-bench-s2e-")
    seeds = "[" + ",".join(str(s) for s in args.seeds) + "]"
    result = train(f"s2e_{args.domain}", [f"seed={args.embedding_seed}", f"rl.seeds={seeds}", "rl.stop_at_target=true",
                                          "tracking.register_model=false", *args.set])
    summary = result["rl"]
    budget = result["results"][0]["curve"][-1]["env_steps"] if result["results"] else None
    ratios = {}
    for name, s in summary.items():
        arm, _, opp = name.partition("/")
        base = summary["none" + (f"/{opp}" if opp else "")]
        ratios[name] = {"censored_steps_none_over_arm": round(base["steps_to_target_censored_mean"] / s["steps_to_target_censored_mean"], 3),
                        "curve_mean_return_minus_none": round(s["curve_mean_return"] - base["curve_mean_return"], 3)}
        mean = f"{s['steps_to_target_mean']:.0f}" if s["reached"] else "-"
        print(f"{name:28s} reached {s['reached']}/{s['seeds']}  steps (reached) {mean:>7s}  censored {s['steps_to_target_censored_mean']:8.0f}  "
              f"none/arm {ratios[name]['censored_steps_none_over_arm']:.2f}  mean return over curve {s['curve_mean_return']:8.2f}  "
              f"final {s['final_return_mean']:8.2f}", flush=True)
    rows = [{k: r[k] for k in ("arm", "opponent", "seed", "steps_to_target", "final_return", "best_return", "curve")} for r in result["results"]]
    write_results(args.out, args.seeds, args.set, rows, {"domain": args.domain, "embedding": result["metrics"], "arms": summary,
                                                          "ratios": ratios, "wall_seconds": result["seconds"], "last_budget_seen": budget})


if __name__ == "__main__":
    main()
