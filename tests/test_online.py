"""Budgeted training runs: recipes, losses, the monitor, training and the cache."""

import dataclasses

import numpy as np
import pytest

from tripletutils import losses as L
from tripletutils.evaluation import embed
from tripletutils.metrics import retrieval_metrics
from tripletutils.online import (
    BEST_RECIPE,
    MINING_SCHEMES,
    MiningRecipe,
    Monitor,
    build_recipe_net,
    load_or_train_mining,
    make_loss,
    train_mining,
    train_softmax_baseline,
)


def test_equal_budget_per_step():
    for scheme in MINING_SCHEMES:
        assert MiningRecipe("r", mining=scheme, p=8, k=12).images_per_step == 96
    assert MiningRecipe("r", mining="seed_triplets", p=5, k=5).images_per_step == 24
    assert MiningRecipe("r", mining="seed_triplets").triplet_model
    assert not MiningRecipe("r", mining="semi_hard").triplet_model


def test_recipe_validation():
    with pytest.raises(ValueError, match="mining must be one of"):
        MiningRecipe("r", mining="hardest")
    with pytest.raises(ValueError, match="network"):
        MiningRecipe("r", network="resnet")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        MiningRecipe("r", steps=0)
    with pytest.raises(ValueError, match="p >= 2 and k >= 2"):
        MiningRecipe("r", k=1)
    with pytest.raises(ValueError, match="margin"):
        MiningRecipe("r", margin=-0.1)
    with pytest.raises(TypeError, match="MiningRecipe"):
        make_loss("batch_all")


def test_make_loss_classes_and_settings():
    expected = {
        "seed_triplets": L.OfflineTripletLoss,
        "random_triplets": L.OfflineTripletLoss,
        "batch_all": L.BatchAllTripletLoss,
        "batch_hard": L.BatchHardTripletLoss,
        "semi_hard": L.SemiHardTripletLoss,
        "soft_margin": L.SoftMarginTripletLoss,
    }
    for scheme, cls in expected.items():
        loss = make_loss(MiningRecipe("r", mining=scheme, margin=0.3, squared=True))
        assert type(loss) is cls
        assert loss.squared is True
        if scheme != "soft_margin":
            assert loss.margin == 0.3


def test_build_recipe_net():
    net = build_recipe_net(BEST_RECIPE, seed=0)
    assert net.output_shape == (None, BEST_RECIPE.embedding_dim)
    e = net(np.random.default_rng(0).random((2, 28, 28, 1)).astype(np.float32)).numpy()
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    seed_net = build_recipe_net(
        MiningRecipe("r", l2_normalize=False, embedding_dim=16), seed=0
    )
    assert seed_net.output_shape == (None, 16)
    assert "l2_normalize" not in [layer.name for layer in seed_net.layers]


def test_monitor_records_match_direct_computation(tiny_data):
    x, y = tiny_data(80)
    net = build_recipe_net(MiningRecipe("r", embedding_dim=8), seed=0)
    mon = Monitor(net, x, y, every=2, margin=0.2, probe_size=40)
    row = mon.record()
    e = embed(net, x)
    m = retrieval_metrics(e, y, ks=(1,))
    assert row["precision_at_1"] == pytest.approx(m["precision_at_1"])
    assert row["mean_average_precision_at_r"] == pytest.approx(
        m["mean_average_precision_at_r"]
    )
    d = L.triplet_diagnostics(y[:40], e[:40], 0.2, False)
    assert row["fraction_active"] == pytest.approx(
        float(d["fraction_active"]), abs=1e-6
    )
    assert row["mean_norm"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="one label per image"):
        Monitor(net, x, y[:-1])
    with pytest.raises(ValueError, match="every"):
        Monitor(net, x, y, every=0)


@pytest.mark.parametrize("scheme", MINING_SCHEMES)
def test_train_mining_every_scheme(tiny_data, scheme):
    x, y = tiny_data(240)
    recipe = MiningRecipe("r", mining=scheme, p=4, k=6, steps=6, embedding_dim=8)
    net, hist = train_mining(
        recipe, x[:200], y[:200], x[200:], y[200:], monitor_every=3
    )
    assert len(hist["step_loss"]) == 6
    assert np.all(np.isfinite(hist["step_loss"]))
    assert [r["step"] for r in hist["monitor"]] == [3.0, 6.0]
    assert hist["images_per_step"] == 24
    assert hist["fit_seconds"] > 0
    assert net.output_shape == (None, 8)


def test_training_learns_and_is_deterministic(tiny_data):
    x, y = tiny_data(240)
    recipe = MiningRecipe(
        "r", mining="batch_all", p=4, k=8, steps=40, embedding_dim=8, learning_rate=3e-3
    )
    net, hist = train_mining(
        recipe, x[:200], y[:200], x[200:], y[200:], monitor_every=40
    )
    assert hist["monitor"][-1]["precision_at_1"] >= 0.9
    net2, hist2 = train_mining(
        recipe, x[:200], y[:200], x[200:], y[200:], monitor_every=40
    )
    np.testing.assert_allclose(hist["step_loss"], hist2["step_loss"], rtol=1e-5)


def test_load_or_train_mining_cache(tiny_data, tmp_path):
    x, y = tiny_data(240)
    recipe = MiningRecipe(
        "tiny", mining="batch_hard", p=4, k=4, steps=3, embedding_dim=8
    )
    net, hist, trained = load_or_train_mining(
        recipe, x[:200], y[:200], x[200:], y[200:], artifacts=tmp_path
    )
    assert trained
    again, hist2, trained2 = load_or_train_mining(
        recipe, x[:200], y[:200], x[200:], y[200:], artifacts=tmp_path
    )
    assert not trained2
    np.testing.assert_allclose(embed(net, x[:10]), embed(again, x[:10]), atol=1e-6)
    other = dataclasses.replace(recipe, margin=0.5)
    _, _, trained3 = load_or_train_mining(
        other, x[:200], y[:200], x[200:], y[200:], artifacts=tmp_path
    )
    assert trained3
    _, _, trained4 = load_or_train_mining(
        other, x[:200], y[:200], x[190:], y[190:], artifacts=tmp_path
    )
    assert trained4  # other monitoring data: retrained


def test_softmax_baseline_learns_and_checks_labels(tiny_data):
    x, y = tiny_data(240)
    recipe = MiningRecipe("r", p=4, k=8, steps=30, embedding_dim=8, learning_rate=3e-3)
    net, clf, hist = train_softmax_baseline(recipe, x, y)
    assert net.output_shape == (None, 8) and clf.output_shape == (None, 4)
    assert len(hist["step_loss"]) == 30 and hist["images_per_step"] == 32
    assert np.mean(np.argmax(clf.predict(x, verbose=0), axis=1) == y) > 0.9
    assert "l2_normalize" not in [layer.name for layer in net.layers]
    with pytest.raises(ValueError, match="every class id"):
        train_softmax_baseline(recipe, x, y + 1)
    with pytest.raises(ValueError, match="one label per image"):
        train_softmax_baseline(recipe, x[:-1], y)


def test_steps_per_execution_changes_nothing_but_speed(tiny_data):
    x, y = tiny_data(240)
    recipe = MiningRecipe(
        "r", mining="batch_all", p=4, k=6, steps=12, embedding_dim=8, dropout=0.0
    )
    fast = dataclasses.replace(recipe, steps_per_execution=4)
    net1, h1 = train_mining(recipe, x[:200], y[:200], x[200:], y[200:], monitor_every=4)
    net2, h2 = train_mining(fast, x[:200], y[:200], x[200:], y[200:], monitor_every=4)
    assert (
        [r["step"] for r in h2["monitor"]]
        == [r["step"] for r in h1["monitor"]]
        == [4.0, 8.0, 12.0]
    )
    assert h1["monitor"][0]["precision_at_1"] == pytest.approx(
        h2["monitor"][0]["precision_at_1"]
    )
    np.testing.assert_allclose(embed(net1, x[:20]), embed(net2, x[:20]), atol=1e-5)
    # per-step losses: spe=4 reports one mean per call, spread over its 4 steps
    np.testing.assert_allclose(
        np.mean(h1["step_loss"]), np.mean(h2["step_loss"]), rtol=1e-4
    )
