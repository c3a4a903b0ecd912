"""Every registered model family: builds for each input kind it supports, has a pinned parameter count,
produces the output shape the task needs, and takes a training step that lowers the loss. Every registered
objective: built from its plain spec, and its batch sums give the loss and metric of the whole split."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from trainables.models import MODELS, build_model, families_for
from trainables.objectives import OBJECTIVES, Objective
from trainables.tasks.base import ModelSpec

SPECS = {
    "tokens": ModelSpec("tokens", 50, 50, seq_len=16, per_step=True),
    "sequence": ModelSpec("sequence", 3, 2, seq_len=12),
    "vector": ModelSpec("vector", 10, 4),
}
CONFIG = {"hidden_size": 32, "num_layers": 2}
CONFIGS = {"transformer": {"num_layers": 2, "d_model": 32, "num_heads": 4, "ff_mult": 2, "dropout": 0.0, "positions": "learned"}}  # others: CONFIG
# Parameter counts for their config; worked out by hand for lstm/sequence:
# 4*(32*3 + 32*32 + 2*32) + 4*(32*32 + 32*32 + 2*32) + (32*2 + 2) = 13250;
# and transformer/tokens: embedding 50*32 + positions 16*32 + 2 blocks * (attention 3*32*32+3*32 + 32*32+32,
# feed-forward 32*64+64 + 64*32+32, two norms 4*32) + final norm 2*32 + head 32*50+50 = 20914.
PINNED = {
    ("transformer", "tokens"): 20914, ("transformer", "sequence"): 17730,
    ("mlp", "tokens"): 12530, ("mlp", "sequence"): 2306, ("mlp", "vector"): 1540,
    ("rnn", "tokens"): 7474, ("rnn", "sequence"): 3362,
    ("lstm", "tokens"): 20146, ("lstm", "sequence"): 13250,
    ("gru", "tokens"): 15922, ("gru", "sequence"): 9954,
}
CASES = [(family, kind) for family in sorted(MODELS) for kind in sorted(MODELS[family].input_kinds)]


def batch(spec: ModelSpec, n: int = 8):
    g = torch.Generator().manual_seed(0)
    if spec.input_kind == "tokens":
        x = torch.randint(0, spec.in_features, (n, spec.seq_len), generator=g)
        return x, torch.randint(0, spec.out_features, (n, spec.seq_len), generator=g), Objective({"name": "bpc"})
    shape = (n, spec.seq_len, spec.in_features) if spec.input_kind == "sequence" else (n, spec.in_features)
    x = torch.randn(shape, generator=g)
    if spec.input_kind == "vector":
        return x, torch.randint(0, spec.out_features, (n,), generator=g), Objective({"name": "accuracy"})
    return x, torch.randn(n, spec.out_features, generator=g), Objective({"name": "rmse", "scale": [1.0] * spec.out_features})


def test_every_case_is_pinned():
    assert set(CASES) == set(PINNED), "a new family or input kind needs a pinned parameter count"


@pytest.mark.parametrize("family,kind", CASES)
def test_parameter_count_is_pinned(family, kind):
    model = build_model(family, CONFIGS.get(family, CONFIG), SPECS[kind])
    assert sum(p.numel() for p in model.parameters()) == PINNED[(family, kind)]


@pytest.mark.parametrize("family,kind", CASES)
def test_output_shape_and_one_training_step(family, kind):
    spec = SPECS[kind]
    torch.manual_seed(0)
    model = build_model(family, CONFIGS.get(family, CONFIG), spec)
    x, y, objective = batch(spec)
    out = model(x)
    expected = (8, spec.seq_len, spec.out_features) if spec.per_step else (8, spec.out_features)
    assert tuple(out.shape) == expected
    # Attention overshoots at Adam's 1e-2 in its first steps (its usual learning rates are lower).
    opt = torch.optim.Adam(model.parameters(), lr=1e-3 if family == "transformer" else 1e-2)
    before = objective.loss(model(x), y)
    for _ in range(5):
        opt.zero_grad()
        objective.loss(model(x), y).backward()
        opt.step()
    assert objective.loss(model(x), y) < before


@pytest.mark.parametrize("family,config", [("mlp", {"context": 4}), ("transformer", {"d_model": 16, "num_heads": 2}),
                                           ("transformer", {"d_model": 16, "positions": "sinusoidal"})])
def test_token_models_are_causal(family, config):
    """Changing a later character must not change earlier predictions (the model would see the future)."""
    spec = SPECS["tokens"]
    model = build_model(family, config, spec).eval()
    x = torch.randint(0, 50, (1, 16))
    changed = x.clone()
    changed[0, 10] = (x[0, 10] + 1) % 50
    assert torch.equal(model(x)[0, :10], model(changed)[0, :10])
    assert not torch.equal(model(x)[0, 10], model(changed)[0, 10])


def test_transformer_options_and_rules():
    learned = build_model("transformer", CONFIGS["transformer"], SPECS["tokens"])
    fixed = build_model("transformer", {**CONFIGS["transformer"], "positions": "sinusoidal"}, SPECS["tokens"])
    assert build_model("transformer", {}, SPECS["tokens"]).position.requires_grad is False, "sinusoidal by default"
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(learned) - count(fixed) == 16 * 32, "sinusoidal positions are computed, not learned"
    assert "position" not in fixed.state_dict()
    last = build_model("transformer", {"d_model": 16, "num_heads": 2, "pooling": "last"}, SPECS["sequence"])
    assert last(torch.randn(4, 12, 3)).shape == (4, 2)
    with pytest.raises(ValueError, match="`d_model % num_heads == 0` must hold"):
        build_model("transformer", {"d_model": 30, "num_heads": 4}, SPECS["tokens"])
    with pytest.raises(ValueError, match="sequence task"):
        build_model("transformer", {}, SPECS["vector"])
    with pytest.raises(ValueError, match="positions must be one of learned, sinusoidal, but got 'rotary'"):
        build_model("transformer", {"positions": "rotary"}, SPECS["tokens"])


@pytest.mark.parametrize("family", families_for("tokens"))
def test_export_load_and_sample_every_token_family(tmp_path, family):
    """Every family that can model characters survives the export file (weights_only) and samples text."""
    from trainables.export import load_model, sample_text, save_model

    vocab = [chr(ord("a") + i) for i in range(26)] + [" ", "\n"]
    spec = ModelSpec("tokens", len(vocab), len(vocab), seq_len=16, per_step=True)
    torch.manual_seed(0)
    model = build_model(family, CONFIGS.get(family, CONFIG), spec).eval()
    path = tmp_path / "model.pt"
    save_model(path, family=family, model_config=CONFIGS.get(family, CONFIG), train_config={}, spec=spec, task="charlm",
               objective={"name": "bpc"}, metric="val_bpc", preprocessing={"vocab": vocab, "seq_len": 16},
               metrics={"val_bpc": 4.0}, state_dict=model.state_dict())
    loaded = load_model(path)
    assert loaded.family == family and loaded.model_config["num_layers"] == 2
    x = torch.randint(0, len(vocab), (2, 16))
    assert torch.equal(loaded.module(x), model(x))
    text = sample_text(loaded, "ab", length=40, seed=1)
    assert text.startswith("ab") and len(text) == 42 and set(text) <= set(vocab)


def test_recurrent_families_refuse_what_they_cannot_do():
    with pytest.raises(ValueError, match="sequence task"):
        build_model("lstm", {}, SPECS["vector"])
    with pytest.raises(ValueError, match="bidirectional"):
        build_model("gru", {"bidirectional": True}, SPECS["tokens"])
    with pytest.raises(ValueError, match="unknown hyperparameter 'hiden_size'"):
        build_model("lstm", {"hiden_size": 3}, SPECS["sequence"])


def test_bidirectional_forecast_model():
    model = build_model("lstm", {"bidirectional": True, "hidden_size": 8}, SPECS["sequence"])
    assert model(torch.randn(4, 12, 3)).shape == (4, 2)


def test_families_for_task_inputs():
    assert families_for("vector") == ["mlp"]
    assert families_for("tokens") == ["gru", "lstm", "mlp", "rnn", "transformer"]


# An objective's spec as a task writes it, and a batch of (outputs, targets) for it.
OBJECTIVE_CASES = {
    "bpc": ({"name": "bpc", "nats_to_bits": 1.0 / math.log(2.0)}, (6, 5, 7), lambda g: torch.randint(0, 7, (6, 5), generator=g)),
    "accuracy": ({"name": "accuracy"}, (6, 4), lambda g: torch.randint(0, 4, (6,), generator=g)),
    "rmse": ({"name": "rmse", "scale": [2.0, 0.5]}, (6, 2), lambda g: torch.randn(6, 2, generator=g)),
}


def test_every_objective_has_a_case():
    assert set(OBJECTIVE_CASES) == set(OBJECTIVES)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_objective_sums_give_the_split_loss_and_metric(name):
    spec, shape, targets = OBJECTIVE_CASES[name]
    objective = Objective(spec)
    assert type(objective) is OBJECTIVES[name] and objective.name == name
    assert type(pickle.loads(pickle.dumps(objective))) is OBJECTIVES[name]
    g = torch.Generator().manual_seed(0)
    out, y = torch.randn(shape, generator=g), targets(g)
    sums = objective.sums(out[:4], y[:4]) + objective.sums(out[4:], y[4:])  # two batches
    loss, metric = objective.finish(sums)
    assert loss == pytest.approx(float(objective.loss(out, y)), rel=1e-5)
    if name == "bpc":
        assert metric == pytest.approx(loss / math.log(2.0))
    elif name == "accuracy":
        assert metric == pytest.approx(float((out.argmax(-1) == y).float().mean()))
    else:
        scale = torch.tensor(spec["scale"])
        assert metric == pytest.approx(float((((out - y) * scale) ** 2).mean().sqrt()), rel=1e-5)
    assert objective.classification == (name != "rmse")


def test_unknown_objective_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown objective 'mae'; known: accuracy, bpc, rmse"):
        Objective({"name": "mae"})


def test_mlp_classifies_token_sequences_with_one_prediction_each():
    """Text classification (tokens in, one label per sequence out): the MLP pools its windows over the sequence."""
    spec = ModelSpec("tokens", 30, 4, seq_len=12, per_step=False)
    model = build_model("mlp", {"hidden_size": 16, "context": 3}, spec)
    x = torch.randint(0, 30, (5, 12))
    assert model(x).shape == (5, 4)
