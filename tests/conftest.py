"""Shared fixtures: one local Ray for the whole session (2 CPUs), and small experiment configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def ray_session():
    """One in-process Ray for every test that tunes; the CLI's start_ray sees it and does not start another."""
    import ray

    from orchestrator import tuning  # noqa: F401  (sets Ray's environment before ray.init)

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture
def tiny_experiment(tmp_path):
    """Writes a small but real experiment YAML and returns a function that writes others like it."""

    def write(name: str = "exp.yaml", **overrides) -> Path:
        import yaml

        config = {
            "name": "tiny",
            "task": {"kind": "charlm", "max_chars": 20000, "seq_len": 32},
            "search_space": {
                "families": {
                    "lstm": {"hidden_size": {"choice": [16, 32]}},
                    "gru": {"hidden_size": {"choice": [16, 32]}},
                    "mlp": {"hidden_size": {"choice": [32, 64]}, "context": {"choice": [4, 8]}},
                },
                "train": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}, "batch_size": 32},
            },
            "searcher": "hyperopt",
            "scheduler": {"kind": "asha", "max_epochs": 4, "grace_period": 1, "reduction_factor": 2},
            "num_samples": 8,
            "max_concurrent": 2,
            "storage": str(tmp_path / "runs"),
            "seed": 0,
        }
        for key, value in overrides.items():
            config[key] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write
