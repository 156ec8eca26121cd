"""Reward serving throughput: `rewardlab serve` vs `mlflow models serve`, same registered model, same requests.

Both servers load the same MLflow registered model (rewardlab through `rewards.load`, MLflow through the pyfunc
that every rewardlab training run logs). Closed-loop clients (asyncio + httpx) send single-item scoring requests
drawn from the math-answers held-out samples, at each concurrency level for a fixed time. Reported per server and
level: requests/s, items/s, p50 and p99 latency, and non-2xx/failed requests; then the ratios. A soak at the
highest concurrency then runs against `rewardlab serve` alone and reports the server's RSS at its start and end.

The model: --model names a registered reward (models:/name/version, with --tracking-uri for its store); without
it, a scalar RM on --backbone (default: the embedded MiniLM) is built, logged and registered in a temporary SQLite
store. Speed does not depend on whether the head was trained.

Run:  python benchmarks/serving.py                         (~12 minutes on 2 CPU cores: three rewardlab variants)
      python benchmarks/serving.py --model models:/quickstart-bt/1 --tracking-uri sqlite:///mlflow.db
Writes benchmarks/results/serving.json (or --out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from rewardlab.serve import process

RESULTS = Path(__file__).parent / "results" / "serving.json"


def register_model(workload: str, backbone: str, store: Path) -> tuple[str, str]:
    """A reward of the workload's kind, logged and registered in a fresh SQLite store: (models:/ URI, tracking URI)."""
    import torch

    from rewardlab import backbones, tracking

    torch.manual_seed(0)
    if workload == "text":
        from rewardlab.models.scalar_head import build_scalar_rm
        from rewardlab.rewards import ScalarTextReward

        tokenizer = backbones.load_tokenizer(backbone)
        model = build_scalar_rm(backbone, tokenizer)
        folder = ScalarTextReward.save(model, tokenizer, store / workload, max_length=96, template="plain")
    else:
        from rewardlab.models.mlp import TransitionMLP
        from rewardlab.rewards import MLPTransitionReward

        folder = MLPTransitionReward.save(TransitionMLP(3, 1, (64, 64)), store / workload)
    uri = f"sqlite:///{store}/mlflow.db"
    with tracking.start_run(tracking.TrackingConfig(uri=uri), f"serving-benchmark-{workload}") as run:
        return run.log_reward_model(folder, f"serving-benchmark-{workload}"), uri


def make_items(workload: str, n: int) -> list:
    """Text: held-out math-answers (prompt, response) samples. Transition: Pendulum-shaped random transitions."""
    if workload == "text":
        from rewardlab.data import TextDataConfig, load_preferences

        samples = load_preferences(TextDataConfig(name="math-answers")).test_samples
        return [(s["prompt"], s["response"]) for s in samples[:n]]
    import numpy as np

    rng = np.random.default_rng(0)
    return [(rng.normal(size=3).tolist(), rng.uniform(-2, 2, size=1).tolist(), rng.normal(size=3).tolist()) for _ in range(n)]


class Target:
    """One server: how to start it, where to send, how to read the rewards back."""

    def __init__(self, name: str, workload: str, cmd: list[str], url: str, ready: str, env: dict):
        self.name, self.workload, self.cmd, self.url, self.ready, self.env = name, workload, cmd, url, ready, env
        self.proc = None
        if name == "mlflow":
            self.path = "/invocations"
        else:
            self.path = "/v1/score" if workload == "text" else "/v1/score_transitions"

    def body(self, item) -> dict:
        if self.workload == "text":
            prompt, response = item
            if self.name == "mlflow":
                return {"dataframe_records": [{"prompt": prompt, "response": response}]}
            return {"prompts": [prompt], "responses": [response]}
        obs, action, next_obs = item
        if self.name == "mlflow":
            return {"dataframe_records": [{"obs": obs, "actions": action, "next_obs": next_obs, "dones": 0.0}]}
        return {"obs": [obs], "actions": [action], "next_obs": [next_obs], "dones": [0.0]}

    def rewards(self, payload: dict) -> list[float]:
        return payload["predictions"] if self.name == "mlflow" else payload["rewards"]

    def start(self) -> None:
        self.proc = process.start(self.cmd, env=self.env)
        process.wait_ready(self.url + self.ready, self.proc, timeout=300)

    def rss_mb(self) -> float:
        procs = [psutil.Process(self.proc.pid)] + psutil.Process(self.proc.pid).children(recursive=True)
        return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20

    def stop(self) -> None:
        process.stop(self.proc)


async def load(target: Target, items: list, concurrency: int, seconds: float) -> dict:
    """Closed loop: ``concurrency`` clients, each sending its next request as soon as the last one is answered.
    aiohttp rather than httpx: on a 2-core machine the client shares the CPU with the server, and aiohttp costs less."""
    import aiohttp

    latencies, errors, statuses = [], 0, {}
    counter = iter(range(10**9))
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as client:

        async def worker():
            nonlocal errors
            while time.perf_counter() < stop_at:
                item = items[next(counter) % len(items)]
                start = time.perf_counter()
                try:
                    async with client.post(target.url + target.path, json=target.body(item)) as r:
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                        ok = r.status < 300 and len(target.rewards(await r.json())) == 1
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    lat = sorted(latencies) or [float("nan")]
    return {
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "requests": len(latencies) + errors,
        "ok": len(latencies),
        "errors": errors,
        "statuses": {str(k): v for k, v in statuses.items()},
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "items_per_s": round(len(latencies) / elapsed, 2),  # one item per request
        "p50_ms": round(1000 * lat[len(lat) // 2], 1),
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
    }


def same_scores(a: Target, b: Target, items) -> float:
    """Largest difference between the two servers' rewards on the same items (they serve the same weights)."""
    got = []
    for t in (a, b):
        got.append([t.rewards(httpx.post(t.url + t.path, json=t.body(item), timeout=120).json())[0] for item in items[:8]])
    return max(abs(x - y) for x, y in zip(*got))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", nargs="+", default=["text", "transition"], choices=["text", "transition"])
    ap.add_argument("--model", default=None, help="a registered text reward, models:/name/version (default: build one)")
    ap.add_argument("--tracking-uri", default=None, help="the MLflow store holding --model")
    ap.add_argument("--backbone", default="embedded:minilm-l6", help="backbone of the model built when --model is not given")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=30.0, help="load time per server and concurrency level")
    ap.add_argument("--soak", type=float, default=60.0, help="soak seconds on rewardlab serve at the highest concurrency (0: skip)")
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                    help="rewardlab's text-path variants to measure (each against the same mlflow peer)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="rewardlab-serving-"))
    results: dict = {"machine": f"{platform.machine()}, {psutil.cpu_count()} CPUs", "device": args.device,
                     "seconds_per_level": args.seconds, "items_per_request": 1, "workloads": {}}
    for workload in args.workloads:
        if args.model and workload == "text":
            model_uri, tracking_uri = args.model, args.tracking_uri
        else:
            print(f"\nbuilding and registering a {workload} reward in {tmp} ...", flush=True)
            model_uri, tracking_uri = register_model(workload, args.backbone, tmp)
        results["workloads"][workload] = run_workload(workload, model_uri, tracking_uri, args)

    if args.soak > 0 and "text" in results["workloads"]:
        c = max(args.concurrency)
        print(f"\n== soak: rewardlab serve, text, c={c}, {args.soak:.0f} s", flush=True)
        ours = make_targets("text", results["workloads"]["text"]["model"], results["workloads"]["text"]["tracking_uri"], args)[0]  # the default
        items = make_items("text", 256)
        ours.start()
        series, done = [], threading.Event()

        def sample_rss():  # every 5 s, to tell a plateau from a leak
            began = time.perf_counter()
            while not done.wait(5.0):
                series.append((round(time.perf_counter() - began, 1), round(ours.rss_mb(), 1)))

        try:
            asyncio.run(load(ours, items, 2, 3))
            rss_start = ours.rss_mb()
            sampler = threading.Thread(target=sample_rss, daemon=True)
            sampler.start()
            row = asyncio.run(load(ours, items, c, args.soak))
            done.set()
            sampler.join()
            rss_end = ours.rss_mb()
        finally:
            ours.stop()
        non_2xx = sum(v for k, v in row["statuses"].items() if not k.startswith("2"))
        results["soak"] = {**row, "non_2xx": non_2xx, "rss_start_mb": round(rss_start, 1), "rss_end_mb": round(rss_end, 1),
                           "rss_mb_every_5s": series}
        print(f"soak: {row['requests']} requests, {non_2xx} non-2xx, {row['errors']} failed, "
              f"RSS {rss_start:.0f} MB -> {rss_end:.0f} MB; every 5 s: {[mb for _, mb in series]}", flush=True)

    for workload, res in results["workloads"].items():
        for name, ratios in res["throughput_ratio_over_mlflow"].items():
            print(f"{workload}: throughput {name} / mlflow:", ", ".join(f"{k}: {v}x" for k, v in ratios.items()),
                  f"(rewards agree to {res['max_abs_reward_difference'][name]:.1e})")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))  # after each workload: a stopped run keeps what it finished
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


VARIANTS = {  # what each step of the text path contributes, in the order they were added
    "rewardlab-rows": ["--max-batch-tokens", "0"],  # micro-batches bounded by rows only (before issue 19)
    "rewardlab": [],  # + a token budget per forward pass, rows sorted by length (the default)
    "rewardlab-compile": ["--compile"],  # + torch.compile
}


def make_targets(workload: str, model_uri: str, tracking_uri: str | None, args, variants=("rewardlab",)) -> list[Target]:
    """The rewardlab server in each of ``variants`` (text workloads; transitions have one path), then the peer."""
    env = {"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    targets = []
    for name in (variants if workload == "text" else ("rewardlab",)):
        port = process.free_port()
        targets.append(Target(name, workload, [sys.executable, "-m", "rewardlab.cli", "serve", model_uri, "--port", str(port),
                                               "--no-access-log", "--max-batch-size", str(args.max_batch_size), *VARIANTS[name]],
                              f"http://127.0.0.1:{port}", "/health", env))
    mlflow_port = process.free_port()
    peer = Target("mlflow", workload, [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local", "-h", "127.0.0.1",
                                       "-p", str(mlflow_port)], f"http://127.0.0.1:{mlflow_port}", "/ping", env)
    return [*targets, peer]


def run_workload(workload: str, model_uri: str, tracking_uri: str | None, args) -> dict:
    targets = make_targets(workload, model_uri, tracking_uri, args, args.variants)
    peer, ours = targets[-1], targets[:-1]
    items = make_items(workload, 256)
    res: dict = {"model": model_uri, "tracking_uri": tracking_uri, "servers": {}, "max_abs_reward_difference": {}}
    for target in targets:
        print(f"\n== {workload}: {target.name} ({' '.join(target.cmd[3:])})", flush=True)
        target.start()
        try:
            if target is peer:
                for other in ours:  # every variant returns the peer's rewards
                    other.start()
                    res["max_abs_reward_difference"][other.name] = same_scores(other, peer, items)
                    other.stop()
            asyncio.run(load(target, items, 2, 3))  # warm-up
            rows = []
            for c in args.concurrency:
                row = asyncio.run(load(target, items, c, args.seconds))
                rows.append(row)
                print(f"{target.name:18s} c={c:3d}  {row['requests_per_s']:8.1f} req/s  p50 {row['p50_ms']:8.1f} ms  "
                      f"p99 {row['p99_ms']:8.1f} ms  errors {row['errors']}", flush=True)
            res["servers"][target.name] = rows
        finally:
            target.stop()
    res["throughput_ratio_over_mlflow"] = {
        t.name: {f"c={a['concurrency']}": round(a["requests_per_s"] / max(b["requests_per_s"], 1e-9), 2)
                 for a, b in zip(res["servers"][t.name], res["servers"]["mlflow"])} for t in ours}
    return res


if __name__ == "__main__":
    sys.exit(main())
