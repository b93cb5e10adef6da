"""Shared test setup: headless rendering before dm_control is imported; MLflow isolated per test."""

from __future__ import annotations

import pytest

from planet.envs import setup_rendering

setup_rendering()


@pytest.fixture
def isolated_mlflow(tmp_path, monkeypatch):
    """Run the test in tmp_path with its own sqlite MLflow store; returns the tracking URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri
