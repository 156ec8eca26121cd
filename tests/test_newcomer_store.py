"""Where runs and artifacts go, and what a run leaves behind (issue 28): artifacts beside the store whatever the
working directory, a store that cannot work refused before any work, another run's resume state never overwritten,
own-data runs named after their data, SIGTERM handled as Ctrl-C, one copy of a finished run's reward and no
checkpoints left, registry names and aliases checked. Real SQLite stores and the real command throughout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from rewardlab import cli, rewards, tracking

FAST = ["--set", "train.epochs=2", "--set", "data.builder.episodes=2", "--set", "data.builder.test_episodes=1"]


def train(*args: str) -> int:
    return cli.main(["train", "pendulum_reward", *FAST, *args])


def under(path: str | Path, folder: Path) -> bool:
    return Path(str(path).removeprefix("file://")).resolve().is_relative_to(folder.resolve())


def test_artifacts_live_beside_the_user_store_whatever_folder_a_command_runs_in(tmp_path, monkeypatch, capsys):
    """No mlflow.db nearby: runs go to the user store, and so do their artifacts (not the first project's mlruns/)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    store_dir = tmp_path / "xdg" / "rewardlab"
    first, second = tmp_path / "project-a", tmp_path / "project-b"
    first.mkdir()
    monkeypatch.chdir(first)
    assert train() == 0
    second.mkdir()
    monkeypatch.chdir(second)  # a second project: a reward registered from there under the same name
    with tracking.start_run(tracking.TrackingConfig(), "second") as run:
        run.log_reward_model(first / "runs/pendulum-reward/reward", "pendulum-reward")
    capsys.readouterr()
    client = mlflow.MlflowClient(f"sqlite:///{store_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rewardlab")
    assert under(experiment.artifact_location, store_dir / "mlartifacts")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and all(under(r.info.artifact_uri, store_dir / "mlartifacts") for r in runs)
    assert not (first / "mlruns").exists() and not (second / "mlruns").exists()
    # deleting the first project's folder loses nothing of the second's: its registered reward still loads
    import shutil

    shutil.rmtree(first)
    reward = rewards.load("models:/pendulum-reward/2")
    assert reward.score(*[__import__("numpy").zeros((1, n)) for n in (3, 1, 3, 1)]).shape == (1,)
    # an evaluation's own experiment (rewardlab-eval, for an unlinked reward) keeps its artifacts there too
    experiment_id = tracking.use_experiment(tracking.EVAL_EXPERIMENT, tracking.resolve_uri())
    assert under(client.get_experiment(experiment_id).artifact_location, store_dir / "mlartifacts")


def test_a_store_that_cannot_work_is_refused_before_any_work_naming_it(workdir, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(workdir / "folder-store"))
    (workdir / "folder-store").mkdir()
    assert train() == 2
    err = capsys.readouterr().err
    assert "MLFLOW_TRACKING_URI is" in err and "file store" in err and "sqlite:///" in err and "Traceback" not in err
    assert not (workdir / "runs").exists()

    typo = workdir / "no-such-folder" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{typo}")
    assert cli.main(["models", "list"]) == 2
    assert f"the folder {typo.parent} does not exist" in capsys.readouterr().err
    assert not typo.parent.exists()

    with socket.socket() as sock:  # a port nobody listens on: refused at once, not after a minute of retries
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    assert train() == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert f"http://127.0.0.1:{port}" in err and "did not answer" in err


def test_a_run_that_did_not_finish_is_never_overwritten_by_a_fresh_one(workdir, capsys):
    assert train("--set", "keep_checkpoints=true") == 0
    state = json.loads((workdir / "runs/pendulum-reward/run.json").read_text())
    mlflow.MlflowClient(tracking.resolve_uri()).set_terminated(state["run_id"], "KILLED")  # as an interrupted run ends
    capsys.readouterr()
    assert train() == 2
    err = capsys.readouterr().err
    assert f"MLflow run {state['run_id']} (KILLED, its last checkpoint checkpoint-2)" in err
    assert "--resume" in err and "--set name=" in err and "Traceback" not in err
    assert json.loads((workdir / "runs/pendulum-reward/run.json").read_text()) == state
    assert len(mlflow.MlflowClient(tracking.resolve_uri()).search_runs([mlflow.MlflowClient(tracking.resolve_uri()).get_experiment_by_name("rewardlab").experiment_id])) == 1
    # its own name: a separate run, the interrupted one kept
    assert train("--set", "name=pendulum-second") == 0
    assert json.loads((workdir / "runs/pendulum-reward/run.json").read_text()) == state


def test_training_on_your_own_data_gets_its_own_name_folder_and_registered_model(workdir, capfd):
    """...and prints none of the libraries' noise (item 17): the new head is said to be expected in rewardlab's words."""
    import warnings

    rows = [{"prompt": f"What is {a} + 2?", "chosen": f"{a + 2}", "rejected": f"{a + 3}"} for a in range(12)]
    (workdir / "my_pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["train", "quickstart", "--set", "data.path=my_pairs.jsonl", "--set", "model.backbone=embedded:minilm-l6",
            "--set", "model.freeze_layers=0", "--set", "train.max_steps=1", "--set", "model.max_length=32"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main(args) == 0
    out, err = capfd.readouterr()
    assert "this run is named quickstart-bt-my_pairs" in out and "--set name=NAME" in out
    said = out + err + "\n".join(str(w.message) for w in caught)
    for noise in ("interpreted in multiple ways", "LOAD REPORT", "MISSING", "gradient_checkpointing", "Failed to infer model signature",
                  "requires_grad", "Downloading artifacts", "input example was not provided"):
        assert noise not in said, noise
    assert "new reward head (classifier.bias, classifier.weight) initialised, as expected" in out
    assert (workdir / "runs/quickstart-bt-my_pairs/run.json").is_file() and not (workdir / "runs/quickstart-bt").exists()
    names = [m["name"] for m in tracking.registered_models()]
    assert names == ["quickstart-bt-my_pairs"]
    # --set name= is the user's choice and is kept; the recipe's own data keeps the recipe's name
    from rewardlab import recipes

    assert recipes.load("quickstart", [a for a in args[2:] if a != "--set"] + ["name=mine"])[0].name == "mine"
    assert recipes.load("quickstart", ["train.max_steps=1"])[0].name == "quickstart-bt"


def test_sigterm_ends_the_run_killed_with_the_resume_hint(workdir):
    """A scheduler's stop or `timeout` is SIGTERM: the MLflow run ends KILLED (not RUNNING for ever) and --resume works."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rewardlab.cli", "train", "pendulum_reward", "--set", "train.epochs=100000",
                             "--set", "data.builder.episodes=2", "--set", "data.builder.test_episodes=1"],
                            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoints = workdir / "runs/pendulum-reward/checkpoints"
    deadline = time.monotonic() + 120
    while not list(checkpoints.glob("checkpoint-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "--resume" in err and "Traceback" not in err
    run_id = json.loads((workdir / "runs/pendulum-reward/run.json").read_text())["run_id"]
    assert mlflow.MlflowClient(tracking.resolve_uri()).get_run(run_id).info.status == "KILLED"
    assert "Interrupted" in mlflow.MlflowClient(tracking.resolve_uri()).get_run(run_id).data.tags["error"]


def test_a_finished_run_keeps_one_copy_of_its_reward_and_no_checkpoints(workdir, capsys):
    assert train() == 0
    out = workdir / "runs/pendulum-reward"
    assert not (out / "checkpoints").exists()
    folder = out / "reward"
    assert folder.is_symlink() and under(folder.resolve(), workdir / "mlartifacts")
    copies = [p for p in workdir.rglob("reward.json") if not p.parent.is_symlink() and "reward" in p.parent.name]
    assert len(copies) == 1, copies
    import numpy as np

    by_folder = rewards.load(folder).score(np.ones((2, 3)), np.ones((2, 1)), np.ones((2, 3)), np.zeros(2))
    by_registry = rewards.load("models:/pendulum-reward/1").score(np.ones((2, 3)), np.ones((2, 1)), np.ones((2, 3)), np.zeros(2))
    assert np.allclose(by_folder, by_registry)
    # a second run in the same folder writes its own reward, never through the link into version 1's stored copy
    assert train("--set", "seed=1") == 0
    again = rewards.load("models:/pendulum-reward/1").score(np.ones((2, 3)), np.ones((2, 1)), np.ones((2, 3)), np.zeros(2))
    second = rewards.load("models:/pendulum-reward/2").score(np.ones((2, 3)), np.ones((2, 1)), np.ones((2, 3)), np.zeros(2))
    assert np.allclose(again, by_registry) and not np.allclose(second, by_registry)
    assert folder.resolve() != Path(str(rewards.resolve_folder("models:/pendulum-reward/1"))).resolve()
    capsys.readouterr()
    assert train("--resume") == 2  # nothing to resume, and the message says why
    assert "finished; there is nothing to resume" in capsys.readouterr().err
    # asked to keep them, it does
    assert train("--set", "name=kept", "--set", "keep_checkpoints=true") == 0
    assert list((workdir / "runs/kept/checkpoints").glob("checkpoint-*"))


def test_names_mlflow_cannot_register_are_refused_before_any_work(workdir, capsys):
    assert train("--set", "name=my/rm") == 2
    err = capsys.readouterr().err
    assert "key 'name': 'my/rm' cannot be a registered model name" in err and "Traceback" not in err
    assert not (workdir / "runs").exists() and not (workdir / "mlflow.db").exists()


def test_models_alias_refuses_names_mlflow_cannot_take(workdir, capsys):
    assert train() == 0
    for alias, needle in [("bad alias!", "only letters, digits"), ("latest", "'latest' is reserved"), ("v2", "reads as a version")]:
        capsys.readouterr()
        assert cli.main(["models", "alias", "pendulum-reward", "1", alias]) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err
    assert cli.main(["models", "alias", "pendulum-reward", "1", "champion"]) == 0
    assert tracking.registered_models()[0]["aliases"] == {"champion": 1}


def test_train_on_a_folder_says_to_give_a_recipe_file(workdir, capsys):
    (workdir / "myrecipes").mkdir()
    (workdir / "myrecipes" / "bt.yaml").write_text("learner: bradley_terry\n")
    assert cli.main(["train", "myrecipes"]) == 2
    err = capsys.readouterr().err
    assert "is a folder; give a recipe file" in err and "bt.yaml" in err


def test_ui_on_a_port_in_use_fails_with_a_message_and_a_nonzero_exit(workdir):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "rewardlab.cli", "ui", "--port", str(port)], cwd=workdir,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
