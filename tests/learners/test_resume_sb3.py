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
