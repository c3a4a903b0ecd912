"""The Trainable's contract without a Tuner: step reports every key, save/load resumes exactly,
reset_config switches to a new trial in the same actor, a diverging trial stops itself cleanly."""

from __future__ import annotations

import math

import pytest

from orchestrator.experiment.config import TASK_OPTIONS
from trainables import constants as C
from trainables.tasks import TASKS
from trainables.trainable import DIVERGED_PENALTY, TorchTrainable, TrialSettings


@pytest.fixture(scope="module")
def trainable_cls(ray_session):
    from ray import tune

    data = TASKS["forecast"].load(TASK_OPTIONS["forecast"](kind="forecast"))
    settings = TrialSettings(metric=C.RMSE, mode="min", max_epochs=5, seed=3)
    return tune.with_parameters(TorchTrainable, data=data, settings=settings)


LSTM = {"arch": {"family": "lstm", "model": {"hidden_size": 16}}, "lr": 3e-3, "batch_size": 32}
MLP = {"arch": {"family": "mlp", "model": {"hidden_size": 32}}, "lr": 3e-3, "batch_size": 32, "optimizer": "sgd"}


def strip(result: dict) -> dict:
    keep = (C.TRAIN_LOSS, C.VAL_LOSS, C.RMSE, C.LEARNING_RATE, C.EPOCH)
    return {k: result[k] for k in keep}


def test_step_reports_every_key(trainable_cls):
    t = trainable_cls(config=LSTM)
    result = t.train()
    for key in (*C.CURVE_KEYS, C.RMSE, C.EPOCH, C.DIVERGED, C.NODE, C.DEVICE):
        assert key in result, key
    assert result[C.EPOCH] == 1 and result[C.DEVICE] == "cpu" and result[C.DIVERGED] is False
    assert math.isfinite(result[C.RMSE]) and result[C.RMSE] > 0
    t.stop()


def test_save_and_load_resume_exactly(trainable_cls, tmp_path):
    a = trainable_cls(config=LSTM)
    a.train()
    a.train()
    checkpoint = a.save(str(tmp_path / "ckpt"))
    expected = strip(a.train())
    b = trainable_cls(config=LSTM)
    b.restore(checkpoint)
    assert strip(b.train()) == pytest.approx(expected)
    a.stop()
    b.stop()


def test_same_config_same_result(trainable_cls):
    """Seeded: a trial's result depends on its config and the experiment seed only."""
    first = [strip(trainable_cls(config=LSTM).train())]
    second = [strip(trainable_cls(config=LSTM).train())]
    assert first == second


def test_reset_config_switches_trial_in_the_same_actor(trainable_cls):
    t = trainable_cls(config=LSTM)
    t.train()
    t.train()
    assert t.reset_config(MLP) is True
    assert type(t.host.trial.model).__name__ == "MLP"
    assert t.host.trial.epoch == 0
    fresh = trainable_cls(config=MLP)
    assert strip(t.step()) == pytest.approx(strip(fresh.step())), "a reused actor must behave like a new one"


def test_diverging_trial_stops_with_a_finite_penalty(trainable_cls):
    config = {"arch": {"family": "rnn", "model": {"hidden_size": 16}}, "lr": 1e6, "optimizer": "sgd", "momentum": 0.9}
    t = trainable_cls(config=config)
    for _ in range(5):
        result = t.step()
        if result[C.DIVERGED]:
            break
    assert result[C.DIVERGED] is True and result["done"] is True
    assert result[C.RMSE] == DIVERGED_PENALTY and math.isfinite(result[C.VAL_LOSS])
