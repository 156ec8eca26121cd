"""Helpers shared by the seed-sweep benchmarks (polar.py, goal_rm.py): run a recipe in-process, keep every run in
a throwaway SQLite MLflow store, and summarise a metric over seeds."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path


def isolated_store(prefix: str) -> Path:
    """chdir into a fresh temporary folder whose SQLite file is the MLflow store for the rest of the process."""
    return use_store(Path(tempfile.mkdtemp(prefix=prefix)))


def use_store(work: Path) -> Path:
    """chdir into ``work``, whose SQLite file becomes the MLflow store for the rest of the process."""
    os.chdir(work)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work}/mlflow.db"
    return work


def train(recipe: str, overrides: list[str], callbacks=()) -> dict:
    """Run ``recipe`` with ``overrides`` through its learner, as ``rewardlab train`` does; adds wall ``seconds``.
    ``callbacks`` go to the learner's ``run`` (what they receive is the learner's: see its docstring)."""
    from rewardlab import recipes

    config, text, _ = recipes.load(recipe, overrides)
    start = time.perf_counter()
    result = recipes.run(config, recipe_text=text, callbacks=callbacks)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def mean_std(values: list[float]) -> dict:
    return {"mean": round(statistics.mean(values), 4), "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}


def seed_sweep_args(doc: str, out: Path, extra=None):
    """The command line every seed-sweep benchmark takes: --seeds, --set (to every arm), --out; ``extra(parser)``
    adds a benchmark's own options."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", action="append", default=[], help="recipe override applied to every arm (repeatable)")
    ap.add_argument("--out", default=str(out))
    ap.add_argument("--append", action="store_true",
                    help="keep the runs already in --out for other seeds (same overrides), so a long sweep can go on later")
    if extra is not None:
        extra(ap)
    args = ap.parse_args()
    args.out = str(Path(args.out).resolve())  # before isolated_store changes the working directory
    return args


def previous_rows(args, overrides: list[str] | None = None) -> list[dict]:
    """With --append, the runs already recorded in --out for seeds not being run now (run with the same
    ``overrides``, by default ``args.set``); else none."""
    import json

    if not args.append or not Path(args.out).exists():
        return []
    old = json.loads(Path(args.out).read_text())
    overrides = args.set if overrides is None else overrides
    if old.get("overrides", []) != overrides:
        raise SystemExit(f"--append: {args.out} was run with overrides {old.get('overrides')}, not {overrides}")
    return [r for r in old["runs"] if r["seed"] not in args.seeds]


def write_results(path: str, seeds: list[int], overrides: list[str], rows: list[dict], summary: dict) -> None:
    import json

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"seeds": seeds, "overrides": overrides, "runs": rows, "summary": summary}, indent=2))
    print(f"wrote {path}")
