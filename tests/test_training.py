import dataclasses
import json

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

from tripletutils.plotting import (
    digit_palette,
    plot_digit_grid,
    plot_embedding_maps,
    plot_retrieval_grid,
    plot_triplets,
)
from tripletutils.recipes import (
    IMPROVED_RECIPE,
    SEED_RECIPE,
    Recipe,
    load_or_train,
    recipe_inputs,
    train_recipe,
)
from tripletutils.training import StepHistory


def test_step_history_recovers_per_step_losses():
    cb = StepHistory()
    cb.on_epoch_begin(0)
    true = [4.0, 2.0, 3.0, 1.0]
    for i, _ in enumerate(true):
        cb.on_train_batch_end(i, {"loss": np.mean(true[: i + 1])})
    np.testing.assert_allclose(cb.step_loss, true)
    cb.on_epoch_begin(1)
    cb.on_train_batch_end(0, {"loss": 5.0})
    cb.on_train_batch_end(1, {"loss": 3.0})
    np.testing.assert_allclose(cb.step_loss[-2:], [5.0, 1.0])


def test_step_history_smooth():
    np.testing.assert_allclose(
        StepHistory.smooth([1.0, 3.0, 5.0, 7.0], window=2), [1.0, 2.0, 4.0, 6.0]
    )
    with pytest.raises(ValueError, match="window"):
        StepHistory.smooth([1.0], window=0)
    with pytest.raises(ValueError, match="at least 1"):
        StepHistory(validate_every=0)


def test_recipes_differ_only_where_documented():
    a, b = dataclasses.asdict(SEED_RECIPE), dataclasses.asdict(IMPROVED_RECIPE)
    assert {k for k in a if a[k] != b[k]} == {
        "name",
        "raw_pixels",
        "activation",
        "l2_normalize",
        "sampling",
    }
    assert (
        SEED_RECIPE.margin == 1.0
        and SEED_RECIPE.squared
        and SEED_RECIPE.batch_size == 32
        and SEED_RECIPE.epochs == 2
    )
    with pytest.raises(ValueError, match="sampling"):
        Recipe("x", False, None, False, "online")


def test_recipe_inputs_scale():
    x = np.full((2, 28, 28, 1), 0.5, np.float32)
    assert recipe_inputs(SEED_RECIPE, x).max() == pytest.approx(127.5)
    assert recipe_inputs(IMPROVED_RECIPE, x).max() == 0.5


@pytest.mark.parametrize(
    "recipe", [SEED_RECIPE, IMPROVED_RECIPE], ids=["seed", "improved"]
)
def test_load_or_train_trains_then_loads(tiny_data, tmp_path, recipe):
    recipe = dataclasses.replace(recipe, epochs=1)
    x, y = tiny_data()
    xv, yv = tiny_data(80, seed=1)
    net, hist, trained = load_or_train(
        recipe, x, y, xv, yv, artifacts=tmp_path, verbose=0, validate_every=2
    )
    assert trained
    assert len(hist["step_loss"]) >= 5 and np.all(np.isfinite(hist["step_loss"]))
    assert hist["val_steps"][-1] == len(hist["step_loss"])
    assert (tmp_path / f"{recipe.name}_triplet.keras").exists()
    net2, hist2, trained2 = load_or_train(
        recipe, x, y, xv, yv, artifacts=tmp_path, verbose=0
    )
    assert not trained2
    assert hist2["step_loss"] == hist["step_loss"]
    np.testing.assert_allclose(
        net2.predict(x[:4], verbose=0), net.predict(x[:4], verbose=0), atol=1e-6
    )
    # another seed is a different model: retrained, not loaded
    _, _, trained3 = load_or_train(
        recipe, x, y, xv, yv, artifacts=tmp_path, verbose=0, seed=1
    )
    assert trained3
    assert (
        json.loads((tmp_path / f"{recipe.name}_history.json").read_text())["seed"] == 1
    )
    # another split of the data is a different model too
    _, _, trained4 = load_or_train(
        recipe, x[:200], y[:200], xv, yv, artifacts=tmp_path, verbose=0, seed=1
    )
    assert trained4


def test_cached_training_key_decides_load_or_train(tmp_path):
    from tripletutils.models import build_embedding_net
    from tripletutils.recipes import cached_training

    calls = []

    def train():
        calls.append(1)
        net = build_embedding_net(embedding_dim=4, seed=len(calls))
        return net, {"step_loss": [1.0, 0.5]}, {"other.keras": net}

    net, hist, trained = cached_training(
        "r", {"seed": 0, "data": "abc"}, train, artifacts=tmp_path
    )
    assert trained and calls == [1] and hist["seed"] == 0 and hist["data"] == "abc"
    assert (tmp_path / "other.keras").exists() and (
        tmp_path / "r_embedding.keras"
    ).exists()
    loaded, hist2, trained2 = cached_training(
        "r", {"seed": 0, "data": "abc"}, train, artifacts=tmp_path
    )
    assert not trained2 and calls == [1] and hist2 == hist
    x = np.ones((2, 28, 28, 1), np.float32)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), net.predict(x, verbose=0), atol=1e-6
    )
    # one changed entry of the key, or retrain=True: trained again
    assert cached_training("r", {"seed": 0, "data": "xyz"}, train, artifacts=tmp_path)[
        2
    ] and calls == [1, 1]
    assert cached_training(
        "r", {"seed": 0, "data": "xyz"}, train, artifacts=tmp_path, retrain=True
    )[2]
    assert len(calls) == 3
    with pytest.raises(TypeError, match="key must be a dict"):
        cached_training("r", [("seed", 0)], train, artifacts=tmp_path)
    with pytest.raises(TypeError, match="train must be callable"):
        cached_training("r", {}, None, artifacts=tmp_path)
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        cached_training("", {}, train, artifacts=tmp_path)


def test_plots_return_figures_with_titles(tiny_data):
    x, y = tiny_data(40)
    fig = plot_digit_grid(x, y, per_class=3)
    assert fig._suptitle.get_text() == "MNIST digits by class"
    t = np.array([[0, 4, 1], [1, 5, 2]])
    fig = plot_triplets(x, y, t, rows=[0, 1])
    assert [ax.get_title() for ax in fig.axes[:3]] == ["anchor", "positive", "negative"]
    labels = np.arange(20) % 10
    xy = np.random.default_rng(0).random((20, 2))
    fig = plot_embedding_maps(
        {"a": {"PCA": xy, "UMAP": xy}, "b": {"PCA": xy, "UMAP": xy}}, labels
    )
    assert len(fig.axes) == 4 and fig.legends
    assert len(digit_palette()) == 10


def test_plots_reject_bad_input(tiny_data):
    x, y = tiny_data(40)
    with pytest.raises(ValueError, match="labels must be"):
        plot_digit_grid(x, y[:3])
    with pytest.raises(ValueError, match="rows must be"):
        plot_triplets(x, y, np.array([[0, 4, 1]]), rows=[3])
    with pytest.raises(ValueError, match="shape"):
        plot_embedding_maps({"a": {"PCA": np.zeros((3, 2))}}, np.arange(4))


def test_retrieval_grid_marks_wrong_neighbours(tiny_data):
    x, y = tiny_data(12)
    nn = np.array(
        [[4, 1, 8], [5, 9, 2]]
    )  # y = i % 4: query 0 (class 0): 4 ok, 1 wrong, 8 ok
    fig = plot_retrieval_grid(x[:2], y[:2], x, y, nn, title="t")
    axes = np.array(fig.axes).reshape(2, 4)
    assert fig._suptitle.get_text() == "t"
    red = [ax.spines["left"].get_linewidth() > 2 for ax in axes[0]]
    assert red == [False, False, True, False]
    assert [ax.get_xlabel() for ax in axes[0]] == ["0", "0", "1", "0"]
    with pytest.raises(ValueError, match="neighbours"):
        plot_retrieval_grid(x[:2], y[:2], x, y, np.array([[0, 99], [1, 2]]))
    with pytest.raises(ValueError, match="neighbours"):
        plot_retrieval_grid(x[:2], y[:2], x, y, nn[:1])


def test_train_recipe_fast_options_keep_the_interface(tiny_data):
    # fused branches, several steps per call and bfloat16 computations: same outputs,
    # float32 net back
    x, y = tiny_data(240)
    recipe = dataclasses.replace(IMPROVED_RECIPE, epochs=1, batch_size=16)
    net, model, hist = train_recipe(
        recipe,
        x[:200],
        y[:200],
        x[200:],
        y[200:],
        verbose=0,
        fused=True,
        steps_per_execution=4,
        precision="mixed_bfloat16",
        validate_every=5,
    )
    assert net.get_layer("embedding").dtype_policy.name == "float32"
    assert model.output.dtype == "float32"
    assert (
        np.all(np.isfinite(hist["step_loss"])) and len(hist["step_loss"]) == 200 // 16
    )
    e = net.predict(x[:4], verbose=0)
    assert e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
