"""CLI commands that are not training: the MLflow UI on 127.0.0.1, data build, help that answers questions."""

from __future__ import annotations

import sys
import urllib.request

import pytest

from rewardlab import cli
from rewardlab.data import DataError, TextDataConfig, load_preferences
from rewardlab.serve import process


def test_ui_serves_the_mlflow_store_on_localhost(workdir):
    port = process.free_port()
    # its own process group, stopped whole below: MLflow's UI runs uvicorn and job-consumer workers
    proc = process.start(
        [sys.executable, "-m", "rewardlab.cli", "ui", "--port", str(port), "--tracking-uri", f"sqlite:///{workdir}/mlflow.db"]
    )
    try:
        body = process.wait_ready(f"http://127.0.0.1:{port}/health", proc, timeout=90)
        assert body.strip() == "OK"
        experiments = urllib.request.urlopen(
            f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search?max_results=10", timeout=5
        ).read().decode()
        assert "Default" in experiments  # it is reading our SQLite store
    finally:
        process.stop(proc)


def test_data_build_pendulum_prints_row_count(capsys):
    assert cli.main(["data", "build", "pendulum-random", "--option", "episodes=2", "--option", "test_episodes=1"]) == 0
    assert "pendulum-random: 600 transitions" in capsys.readouterr().out
    assert cli.main(["data", "build", "pendulum-random", "--option", "episode=2"]) == 2
    err = capsys.readouterr().err
    assert "--option" in err and "'episode'" in err and "episodes, test_episodes, seed" in err and "Traceback" not in err


def test_hub_dataset_without_network_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match="Anthropic/hh-rlhf: could not load from the Hugging Face hub.*needs network"):
        load_preferences(TextDataConfig(name="Anthropic/hh-rlhf"))


def test_help_explains_commands_and_overrides(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--set KEY.PATH=VALUE" in out and "--resume" in out and "MLFLOW_TRACKING_URI" in out
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    out = capsys.readouterr().out
    # routes, both compatibility clients, auth and the batching knobs are documented where users look
    for needle in ("/v1/score", "/get_reward", "--remote_rm_url", "server_type=\"vllm\"", "--api-key", "REWARDLAB_API_KEY",
                   "--max-batch-size", "--max-body-mb", "127.0.0.1"):
        assert needle in out, needle
