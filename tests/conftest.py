"""Shared fixtures: every test that tracks runs gets its own working directory and its own SQLite MLflow store."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one torch thread per worker (pytest -n N): N jobs on N cores, none oversubscribed
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """cwd = a fresh folder; MLflow = a fresh sqlite store there (artifacts land under it too)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path


@pytest.fixture(scope="module")
def module_workdir(tmp_path_factory):
    """Like ``workdir`` but shared by a module's tests (one training run, many assertions)."""
    path = tmp_path_factory.mktemp("run")
    mp = pytest.MonkeyPatch()
    mp.chdir(path)
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{path}/mlflow.db")
    yield path
    mp.undo()


@contextmanager
def serving(reward, settings=None):
    """The real rewardlab app for ``reward`` (with ``settings``, a ``ServeSettings``, as `rewardlab serve`'s flags make
    it) under uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    from rewardlab.serve import ServeSettings, create_app, process

    port = process.free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(reward, settings or ServeSettings()), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        assert server.started, "the test server did not start within 30 s"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def serve_reward():
    """``with serve_reward(reward) as url:`` runs the real server for ``reward`` on 127.0.0.1 (see ``serving``)."""
    return serving


@pytest.fixture(scope="session")
def reward_folder(tmp_path_factory):
    """An untrained MiniLM Bradley-Terry reward folder (plain template): real, fast, for commands that score text."""
    import torch

    from rewardlab import backbones
    from rewardlab.models.scalar_head import build_scalar_rm
    from rewardlab.rewards.text import ScalarTextReward

    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.MINILM)
    return ScalarTextReward.save(build_scalar_rm(backbones.MINILM, tokenizer), tokenizer, tmp_path_factory.mktemp("rm") / "rm",
                                 max_length=48, template="plain")
