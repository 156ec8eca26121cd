"""The MLflow store does not move with the working directory, registry errors name the store, and registered
rewards can be listed and given aliases from the command line. Real SQLite stores throughout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardlab import cli, rewards, tracking
from rewardlab.models.discriminator import Discriminator
from rewardlab.rewards.discriminator import DiscriminatorReward


def register(tmp_path, name: str, times: int = 1) -> list[str]:
    """Register a tiny transition reward ``times`` times under ``name``; returns the model URIs."""
    torch.manual_seed(0)
    folder = DiscriminatorReward.save(Discriminator(3, 1, (8,)), tmp_path / f"{name}-reward", action_low=[-2.0],
                                      action_high=[2.0], absorbing=False)
    uris = []
    for _ in range(times):
        with tracking.start_run(tracking.TrackingConfig(), name) as run:
            uris.append(run.log_reward_model(folder, name))
            summary = run.summary(folder, uris[-1])
    assert f"models:/{name}/latest now points to version {len(uris)}" in summary
    assert "tracking.register_model=false" in summary
    return uris


def test_the_store_is_found_from_a_subfolder_and_never_created_in_an_unrelated_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    project = tmp_path / "project"
    (project / "notebooks" / "deep").mkdir(parents=True)
    (project / "mlflow.db").write_bytes(b"")
    monkeypatch.chdir(project / "notebooks" / "deep")
    assert tracking.resolve_uri() == f"sqlite:///{project / 'mlflow.db'}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert tracking.resolve_uri() == f"sqlite:///{tmp_path / 'data' / 'rewardlab' / 'mlflow.db'}"
    assert not (elsewhere / "mlflow.db").exists()


def test_models_list_alias_and_loading_by_alias(workdir, capsys):
    register(workdir, "tiny-gail", times=2)
    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"store: sqlite:///{workdir}/mlflow.db" in out and "tiny-gail" in out and "2 version(s); latest 2" in out
    assert cli.main(["models", "alias", "tiny-gail", "1", "champion"]) == 0
    assert "models:/tiny-gail@champion -> version 1" in capsys.readouterr().out
    assert cli.main(["models", "list"]) == 0
    assert "@champion -> 1" in capsys.readouterr().out
    reward = rewards.load("models:/tiny-gail@champion")
    assert reward.score(np.zeros((2, 3)), np.zeros((2, 1)), np.zeros((2, 3)), np.zeros(2)).shape == (2,)
    assert cli.main(["models", "alias", "tiny-gail", "7", "champion"]) == 2
    err = capsys.readouterr().err
    assert f"models:/tiny-gail/7: not in the store sqlite:///{workdir}/mlflow.db; its versions are 1, 2" in err
    assert "Traceback" not in err


def test_a_missing_registered_model_names_the_store_searched(workdir):
    with pytest.raises(FileNotFoundError, match=f"MLflow store searched: sqlite:///{workdir}/mlflow.db"):
        rewards.load("models:/no-such-reward/latest")


def test_logging_datasets_and_rewards_raises_none_of_mlflows_known_harmless_warnings(workdir):
    import warnings

    rows = [{"qid": i, "split": "train", "prompt": "q", "chosen": "a", "rejected": "b"} for i in range(5)]
    folder = DiscriminatorReward.save(Discriminator(3, 1, (8,)), workdir / "d", action_low=[-2.0], action_high=[2.0], absorbing=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracking.start_run(tracking.TrackingConfig(), "quiet") as run:
            run.log_dataset(rows, "pairs", None, "training", "test rows")
            uri = run.log_reward_model(folder, None)
    messages = [str(w.message) for w in caught]
    assert uri.startswith("runs:/")
    assert not [m for m in messages if "Integer columns" in m or "type hints to the `predict`" in m], messages
