"""--resume for the SB3-based learners, the hard way: the training process is killed with SIGKILL mid-run (no
handler runs, nothing is flushed), then `rewardlab train ... --resume` continues the same MLflow run from the last
checkpoint, and every evaluation is logged exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rewardlab import tracking

GAIL = ["agent.total_steps=1000", "agent.learning_starts=100", "eval.every=200", "eval.episodes=1", "demos.episodes=2",
        "name=gail-kill", "tracking.register_model=false"]


def train(recipe: str, overrides: list[str], cwd: Path, resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rewardlab.cli", "train", recipe, *(a for kv in overrides for a in ("--set", kv))]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd + (["--resume"] if resume else []), cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def kill_after(proc: subprocess.Popen, marker: Path, timeout: float = 300) -> None:
    """SIGKILL ``proc`` once ``marker`` exists (waiting only; never reaching it fails the test)."""
    deadline = time.time() + timeout
    while not marker.exists():
        assert proc.poll() is None, f"training ended before {marker.name} appeared:\n{proc.stdout.read()[-3000:]}"
        assert time.time() < deadline, f"{marker} did not appear within {timeout} s"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_gail_killed_mid_run_resumes_the_same_run_without_redoing_or_losing_an_evaluation(tmp_path):
    out = tmp_path / "runs" / "gail-kill"
    first = train("gail_pendulum", GAIL, tmp_path)
    kill_after(first, out / "checkpoints" / "checkpoint-400")
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    saved = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
    assert saved and saved[-1] >= 400 and len(saved) == 1  # older checkpoints are removed

    resumed = train("gail_pendulum", GAIL, tmp_path, resume=True)
    log, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, log[-3000:]
    assert f"resumed at {saved[-1]} environment steps" in log
    assert "step     200 " not in log  # evaluations before the checkpoint are not redone

    run = tracking.get_run_data(run_id, f"sqlite:///{tmp_path}/mlflow.db")
    assert run.info.status == "FINISHED"
    steps = [s for s, _ in tracking.metric_history(run_id, "eval/true_return", f"sqlite:///{tmp_path}/mlflow.db")]
    assert steps == [200, 400, 600, 800, 1000]  # each evaluation exactly once, none lost
    curve = json.loads((out / "curve.json").read_text())
    assert [p["env_steps"] for p in curve] == steps
    assert (out / "reward" / "reward.json").exists()
    # the resumed process continued the agent: SB3 counted the steps done before the kill
    assert "final_return" in json.loads((out / "eval.json").read_text())


S2E = ["data.episodes=30", "embedding.epochs=2", "rl.arms=[none, s2e]", "rl.seeds=[0]", "rl.opponents=[random]", "rl.total_steps=3072",
       "rl.eval_every=1024", "rl.eval_episodes=2", "rl.agent.kwargs={n_steps: 128, batch_size: 64}", "name=s2e-kill"]


def test_s2e_killed_during_its_rl_arms_resumes_without_training_the_embedding_again(tmp_path):
    out, store = tmp_path / "runs" / "s2e-kill", f"sqlite:///{tmp_path}/mlflow.db"
    first = train("s2e_connect4", S2E, tmp_path)
    # checkpoint-1: the embedding; then one per evaluation and one per finished arm: 2-4 the first arm's evaluations,
    # 5 its end, 6-8 the second arm's. Killed once checkpoint-7 exists: in the middle of the second arm
    kill_after(first, out / "checkpoints" / "checkpoint-7")
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    before = tracking.get_run_data(run_id, store)
    assert before.data.tags["model_uri"] == "models:/s2e-kill/1"

    resumed = train("s2e_connect4", S2E, tmp_path, resume=True)
    log, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, log[-3000:]
    assert "resumed from" in log and "S2E embedding" not in log  # the embedding is not trained again
    assert "rl/none/random/seed0  step" not in log  # the finished arm is not redone
    assert "rl/s2e/random/seed0  step    1024" not in log  # nor the second arm's evaluations before the kill

    run = tracking.get_run_data(run_id, store)
    assert run.info.status == "FINISHED" and run.data.tags["model_uri"] == "models:/s2e-kill/1"  # registered once
    for arm in ("none", "s2e"):
        steps = [s for s, _ in tracking.metric_history(run_id, f"rl/{arm}/random/seed0/true_return", store)]
        assert steps == [1024, 2048, 3072], (arm, steps)  # each evaluation exactly once
    assert [r["arm"] for r in json.loads((out / "rl_curves.json").read_text())] == ["none", "s2e"]
