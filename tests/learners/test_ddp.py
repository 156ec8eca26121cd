"""Two processes under torchrun (gloo, CPU): one DDP training, one MLflow run, logged by rank 0 only."""

from __future__ import annotations

import os
import subprocess
import sys

from rewardlab import tracking

TINY = ["model.backbone=embedded:minilm-l6", "model.freeze_layers=6", "model.max_length=64", "data.max_train_pairs=32",
        "data.max_eval_pairs=16", "data.max_eval_samples=16", "train.max_steps=2", "train.batch_size=4", "train.logging_steps=1",
        "name=bt-ddp", "tracking.register_model=false"]


def test_torchrun_with_two_processes_trains_data_parallel_and_logs_one_run(tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "rewardlab.cli", "train", "quickstart"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(torchrun + [a for kv in TINY for a in ("--set", kv)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    import mlflow

    runs = mlflow.MlflowClient(tracking_uri=store).search_runs([e.experiment_id for e in mlflow.MlflowClient(tracking_uri=store).search_experiments()])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # rank 1 trained silently
    # 2 steps of 4 pairs on each of 2 processes: half of the 32 pairs, so epoch 0.5 (one process would be at 0.25)
    epochs = [v for _, v in tracking.metric_history(runs[0].info.run_id, "epoch", store)]
    assert epochs[-1] == 0.5
    assert "eval/pair_accuracy" in runs[0].data.metrics
