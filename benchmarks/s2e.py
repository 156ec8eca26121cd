"""S2E shaping against no shaping and ground-truth concept shaping, at a fixed budget, over seeds.

For one domain, runs its recipe (recipes/s2e_<domain>.yaml): the embedding is trained once (seed
``--embedding-seed``), then every arm (none, s2e, ground_truth) and, for Connect 4, every opponent trains an SB3
agent per seed for the WHOLE budget (no early stop), evaluated on the environment's true reward at the recipe's
cadence. Reported per arm, mean +- std over seeds (uncensored): the final true return (and win rate), and the area
under the learning curve (the mean true return over all evaluations). Steps to the recipe's target return is a
secondary column and is censored: a seed that never reaches it counts as the whole budget.

Lunar Lander: ``none`` is the sparse reward (only the +-100 of landing or crashing), ``ground_truth`` adds the
shaping of the rule concepts, which is exactly gymnasium's dense reward (tested), and ``s2e`` the shaping of the
concepts the embedding predicts: the paper's comparison is s2e against ground truth (expert concepts).

Prints each arm's measures and its difference from ``none``, and writes benchmarks/results/s2e_<domain>.json after
every run (so a stopped sweep keeps what it finished). ``--set rl.arms=[s2e]`` runs one arm, to run arms side by
side in separate processes (one torch thread each), each with its own ``--out``.

Run:  python benchmarks/s2e.py --domain connect4 --seeds 0 1 2 --set rl.opponents=[lookahead] --set rl.total_steps=60000
      python benchmarks/s2e.py --domain lunarlander --seeds 0 1 2
"""

from __future__ import annotations

from pathlib import Path

from common import isolated_store, seed_sweep_args, train, write_results

HERE = Path(__file__).parent
KEEP = ("arm", "opponent", "seed", "steps_to_target", "final_return", "best_return", "curve")


def report(summary: dict) -> dict:
    """Print each arm's uncensored measures beside none's; return the differences arm - none."""
    diffs = {}
    for name, s in summary.items():
        arm, _, opp = name.partition("/")
        base = summary.get("none" + (f"/{opp}" if opp else ""))
        if base is not None:
            diffs[name] = {"final_return_minus_none": round(s["final_return_mean"] - base["final_return_mean"], 3),
                           "auc_minus_none": round(s["auc_mean_return"] - base["auc_mean_return"], 3)}
        mean = f"{s['steps_to_target_mean']:.0f}" if s["reached"] else "-"
        print(f"{name:24s} final {s['final_return_mean']:8.2f} +- {s['final_return_std']:6.2f}  "
              f"AUC {s['auc_mean_return']:8.2f} +- {s['auc_mean_return_std']:6.2f}  "
              f"win rate {s['final_win_rate_mean']:.2f}  target reached {s['reached']}/{s['seeds']} (steps {mean}, "
              f"censored mean {s['steps_to_target_censored_mean']:.0f})", flush=True)
    return diffs


def main() -> None:
    from rewardlab.learners.s2e import summarise

    def extra(ap):
        ap.add_argument("--domain", choices=["connect4", "lunarlander"], default="connect4")
        ap.add_argument("--embedding-seed", type=int, default=0)

    args = seed_sweep_args(__doc__, HERE / "results" / "s2e_DOMAIN.json", extra)
    if "DOMAIN" in Path(args.out).name:
        args.out = str(Path(args.out).with_name(f"s2e_{args.domain}.json"))
    isolated_store("rewardlab-bench-s2e-")
    seeds = "[" + ",".join(str(s) for s in args.seeds) + "]"
    overrides = [f"seed={args.embedding_seed}", f"rl.seeds={seeds}", "rl.stop_at_target=false", "tracking.register_model=false", *args.set]

    def save(results: list[dict], extra_summary: dict | None = None) -> dict:
        summary = summarise(results, results[0]["curve"][-1]["env_steps"]) if results else {}
        write_results(args.out, args.seeds, args.set, [{k: r[k] for k in KEEP} for r in results],
                      {"domain": args.domain, "arms": summary, **(extra_summary or {})})
        return summary

    result = train(f"s2e_{args.domain}", overrides, callbacks=[save])
    summary = result["rl"]
    diffs = report(summary)
    save(result["results"], {"embedding": result["metrics"], "minus_none": diffs, "wall_seconds": result["seconds"]})


if __name__ == "__main__":
    main()
