"""Shared fixtures: every test that tracks runs gets its own working directory and its own SQLite MLflow store."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


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
