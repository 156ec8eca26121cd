"""CLI commands that are not training: the MLflow UI on 127.0.0.1, data build, help that answers questions."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from rewardlab import cli
from rewardlab.data import DataError, TextDataConfig, load_preferences


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_mlflow_store_on_localhost(workdir):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rewardlab.cli", "ui", "--port", str(port), "--tracking-uri", f"sqlite:///{workdir}/mlflow.db"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,  # its own process group, stopped whole below
    )
    try:
        deadline, body = time.time() + 90, None
        while time.time() < deadline and body is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read().decode()
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
                time.sleep(0.5)
        assert body is not None and body.strip() == "OK"
        experiments = urllib.request.urlopen(
            f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search?max_results=10", timeout=5
        ).read().decode()
        assert "Default" in experiments  # it is reading our SQLite store
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen) -> None:
    """Stop the server and every worker it started (MLflow's UI runs uvicorn and job consumers)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # workers that outlived the parent
    except ProcessLookupError:
        pass
    proc.wait(timeout=15)


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
