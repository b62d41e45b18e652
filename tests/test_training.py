"""The one training stack: Recipe, its builders and train()."""

import dataclasses
import json
import pickle

import keras
import numpy as np
import pytest

from tripletutils import losses as L
from tripletutils.evaluation import embed
from tripletutils.recipes import BEST_RECIPE, IMPROVED_RECIPE, SEED_RECIPE
from tripletutils.sampling import seed_offline_triplets
from tripletutils.training import (
    MINING_SCHEMES,
    NonFiniteLossError,
    Recipe,
    batch_schedule,
    build_recipe_net,
    build_training_model,
    compiled_train_function,
    compute_precision,
    make_loss,
    make_optimizer,
    recipe_inputs,
    train,
    train_softmax_baseline,
    training_data,
)


def test_equal_budget_per_step():
    for scheme in MINING_SCHEMES:
        assert Recipe("r", mining=scheme, p=8, k=12).images_per_step == 96
    assert Recipe("r", mining="seed_triplets", p=5, k=5).images_per_step == 24
    assert Recipe("r", mining="seed_triplets").triplet_model
    assert not Recipe("r", mining="semi_hard").triplet_model
    assert SEED_RECIPE.batch_size == 32 and Recipe("r").batch_size == 96


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(mining="hardest"), ValueError, "mining must be one of"),
        (dict(network="resnet"), ValueError, "network"),
        (dict(steps=0), ValueError, "steps must be a positive int"),
        (dict(steps=2.5), ValueError, "steps must be a positive int"),
        (dict(k=1), ValueError, "p >= 2 and k >= 2"),
        (dict(margin=-0.1), ValueError, "margin"),
        (dict(learning_rate=0.0), ValueError, "learning_rate"),
        (dict(dropout=1.0), ValueError, "dropout"),
        (dict(steps=None), ValueError, "needs a triplet scheme"),
        (dict(steps=10, epochs=2), ValueError, "epochs must be 1"),
        (dict(precision="float8"), ValueError, "precision must be one of"),
        (dict(fused=True), ValueError, "triplet schemes only"),
        (dict(squared=1), TypeError, "squared must be a bool"),
        (dict(name=""), ValueError, "name"),
        (dict(name="a/b"), ValueError, "names the cache files"),
        (dict(margin="0.2"), TypeError, "margin must be a real number, got str"),
        (dict(learning_rate=None), TypeError, "learning_rate must be a real number"),
        (dict(learning_rate=True), TypeError, "learning_rate must be a real number"),
        (dict(margin=float("nan")), ValueError, "margin must be finite"),
        (dict(precision=None), ValueError, "precision must be one of"),
        (dict(precision="bfloat16"), ValueError, "float32 weights"),
        (dict(activation="relu6x"), ValueError, "activation"),
        (dict(augment=1), TypeError, "augment must be a bool"),
        (dict(mining="seed_triplets", augment=True), ValueError, "P x K recipes only"),
        (dict(mining="random_triplets", augment=True), ValueError, "P x K"),
    ],
)
def test_recipe_rejects_bad_fields(kwargs, error, match):
    fields = {"name": "r", **kwargs}
    with pytest.raises(error, match=match):
        Recipe(**fields)


def test_recipe_takes_numpy_scalars_as_python_numbers():
    r = Recipe("r", margin=np.float32(0.5), embedding_dim=np.int64(16), p=np.int32(4))
    assert type(r.margin) is float and r.margin == 0.5
    assert type(r.embedding_dim) is int and type(r.p) is int
    json.dumps(dataclasses.asdict(r))  # the cache key stays JSON


def test_train_rejects_bad_input_before_training(tiny_data):
    x, y = tiny_data(80)
    r = Recipe("r", p=4, k=4, steps=2, embedding_dim=8)
    cases = [
        ((r, x, y[:-1]), {}, ValueError, "one label per image"),
        ((r, x * 255, y), {}, ValueError, r"must lie in \[0, 1\]"),
        ((r, (x * 255).astype(np.uint8), y), {}, TypeError, "must be floats"),
        ((r, x, y.astype(np.float32)), {}, TypeError, "integer labels"),
        ((r, x, y, x[:, :20], y), {"monitor_every": 1}, ValueError, "differ from"),
        ((r, x, y, x, y + 0.5), {"monitor_every": 1}, TypeError, "integer labels"),
        ((r, x, y), {"strategy": "mirrored"}, TypeError, "tf.distribute.Strategy"),
        (
            (r, x, y),
            {"net": build_recipe_net(Recipe("o"))},
            ValueError,
            "embedding_dim",
        ),
        ((r, x, y), {"monitor_every": 2}, ValueError, "need x_val and y_val"),
    ]
    fast = dataclasses.replace(r, steps_per_execution=4)
    cases.append(((fast, x, y, x, y), {"monitor_every": 6}, ValueError, "multiple"))
    for args, kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            train(*args, **kwargs)


def test_online_recipes_refuse_several_replicas():
    import tensorflow as tf

    class TwoReplicas(tf.distribute.OneDeviceStrategy):
        num_replicas_in_sync = 2

    x = np.zeros((40, 28, 28, 1), np.float32)
    y = np.arange(40) % 4
    with pytest.raises(ValueError, match="mine in their own slice"):
        train(Recipe("r", p=4, k=4, steps=1), x, y, strategy=TwoReplicas("/cpu:0"))


def test_seed_triplets_batch_larger_than_the_triplets_is_refused(tiny_data):
    x, y = tiny_data(40)
    r = Recipe("r", mining="seed_triplets", p=8, k=12, steps=2)  # 32 a batch
    with pytest.raises(ValueError, match="needs at least that many"):
        training_data(r, x[:12], y[:12])


def test_builders_reject_a_non_recipe():
    for fn in (make_loss, make_optimizer, build_recipe_net):
        with pytest.raises(TypeError, match="recipe must be a Recipe"):
            fn("batch_all")
    with pytest.raises(TypeError, match="recipe must be a Recipe"):
        recipe_inputs({"raw_pixels": True}, np.zeros((1, 28, 28, 1), np.float32))


def test_recipe_inputs_scale():
    x = np.full((2, 28, 28, 1), 0.5, np.float32)
    assert recipe_inputs(SEED_RECIPE, x).max() == pytest.approx(127.5)
    assert recipe_inputs(IMPROVED_RECIPE, x).max() == 0.5


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
        loss = make_loss(Recipe("r", mining=scheme, margin=0.3, squared=True))
        assert type(loss) is cls
        assert loss.squared is True
        if scheme != "soft_margin":
            assert loss.margin == 0.3


def test_make_optimizer_schedule():
    constant = make_optimizer(SEED_RECIPE)
    assert float(constant.learning_rate) == pytest.approx(1e-3)
    decayed = make_optimizer(Recipe("r", steps=100, learning_rate=2e-3))
    schedule = decayed._learning_rate
    assert float(schedule(0)) == pytest.approx(2e-3)
    assert float(schedule(50)) == pytest.approx(1e-3, rel=1e-5)
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="total_steps"):
        make_optimizer(dataclasses.replace(SEED_RECIPE, cosine_decay=True))
    scaled = make_optimizer(Recipe("r", precision="mixed_float16"))
    assert isinstance(scaled, keras.optimizers.LossScaleOptimizer)
    assert not isinstance(decayed, keras.optimizers.LossScaleOptimizer)


def test_build_recipe_net():
    net = build_recipe_net(BEST_RECIPE, seed=0)
    assert net.output_shape == (None, BEST_RECIPE.embedding_dim)
    e = net(np.random.default_rng(0).random((2, 28, 28, 1)).astype(np.float32)).numpy()
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    seed_net = build_recipe_net(Recipe("r", l2_normalize=False, embedding_dim=16))
    assert seed_net.output_shape == (None, 16)
    assert "l2_normalize" not in [layer.name for layer in seed_net.layers]
    relu = build_recipe_net(SEED_RECIPE, seed=0)
    assert relu.get_layer("embedding").activation.__name__ == "relu"


def test_build_training_model_precision_and_fusion():
    recipe = dataclasses.replace(SEED_RECIPE, fused=True, precision="mixed_bfloat16")
    net = build_recipe_net(recipe, seed=0)
    trained, model = build_training_model(recipe, net)
    assert trained is not net  # a bfloat16 copy, same weights
    assert trained.get_layer("embedding").dtype_policy.name == "mixed_bfloat16"
    for a, b in zip(trained.get_weights(), net.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.output.dtype == "float32" and len(model.inputs) == 3
    assert "stack_triplets" in [layer.name for layer in model.layers]
    online = Recipe("r")
    same, model = build_training_model(online, build_recipe_net(online))
    assert model is same
    with pytest.raises(TypeError, match="net must be a keras.Model"):
        build_training_model(online, "net")


def test_training_data_budgets(tiny_data):
    x, y = tiny_data(240)
    data, steps, epochs = training_data(SEED_RECIPE, x, y)
    assert steps is None and epochs == 2  # the seed's epochs, the dataset's end
    n_triplets = len(seed_offline_triplets(y, seed=0))
    assert int(data.cardinality()) == -(-n_triplets // 32) > 1  # last one shorter
    data, steps, epochs = training_data(IMPROVED_RECIPE, x, y)
    assert steps == n_triplets // 32 and epochs == 2  # whole batches only
    xb, yb = next(iter(training_data(Recipe("r", p=4, k=6), x, y)[0]))
    assert xb.shape == (24, 28, 28, 1) and len(np.unique(yb.numpy())) == 4
    with pytest.raises(ValueError, match="one label per image"):
        training_data(SEED_RECIPE, x, y[:-1])


@pytest.mark.slow
@pytest.mark.parametrize("scheme", MINING_SCHEMES)
def test_train_every_scheme(tiny_data, scheme):
    x, y = tiny_data(240)
    recipe = Recipe("r", mining=scheme, p=4, k=6, steps=6, embedding_dim=8)
    net, model, hist = train(
        recipe, x[:200], y[:200], x[200:], y[200:], monitor_every=3
    )
    assert len(hist["step_loss"]) == 6
    assert np.all(np.isfinite(hist["step_loss"]))
    assert [r["step"] for r in hist["monitor"]] == [3.0, 6.0]
    assert hist["images_per_step"] == 24
    assert hist["fit_seconds"] > 0
    assert hist["stopped_at_step"] is None  # the run finished its budget
    assert net.output_shape == (None, 8)
    assert (model is net) != recipe.triplet_model


@pytest.mark.slow
def test_train_seed_recipe_by_epochs_with_validation(tiny_data):
    x, y = tiny_data(240)
    recipe = dataclasses.replace(SEED_RECIPE, epochs=1, p=4, k=6)  # 8 triplets
    net, model, hist = train(
        recipe, x[:200], y[:200], x[200:], y[200:], validate_every=5
    )
    steps = len(hist["step_loss"])
    n_triplets = len(seed_offline_triplets(y[:200], seed=0))
    assert steps == -(-n_triplets // 8) and steps >= 10  # last batch shorter
    assert hist["val_steps"][0] == 5 and hist["val_steps"][-1] == steps
    assert len(hist["epoch_loss"]) == 1 and "monitor" not in hist
    with pytest.raises(ValueError, match="monitor_every"):
        train(Recipe("r"), x, y, x, y, validate_every=5)
    with pytest.raises(ValueError, match="need x_val and y_val"):
        train(recipe, x, y, monitor_every=5)


@pytest.mark.slow
def test_training_learns_and_is_deterministic(tiny_data):
    x, y = tiny_data(240)
    recipe = Recipe(
        "r", mining="batch_all", p=4, k=8, steps=40, embedding_dim=8, learning_rate=3e-3
    )
    net, _, hist = train(recipe, x[:200], y[:200], x[200:], y[200:], monitor_every=40)
    assert hist["monitor"][-1]["precision_at_1"] >= 0.9
    net2, _, hist2 = train(recipe, x[:200], y[:200], x[200:], y[200:], monitor_every=40)
    np.testing.assert_array_equal(hist["step_loss"], hist2["step_loss"])


@pytest.mark.slow
def test_train_continues_a_given_network(tiny_data):
    x, y = tiny_data(240)
    recipe = Recipe("r", p=4, k=6, steps=3, embedding_dim=8)
    net = build_recipe_net(recipe, seed=5)
    before = [w.copy() for w in net.get_weights()]
    trained, _, _ = train(recipe, x, y, net=net)
    assert trained is net
    # in bfloat16 the copy that trains hands its weights back to the given net
    before = [w.copy() for w in net.get_weights()]
    bf16 = dataclasses.replace(recipe, precision="mixed_bfloat16")
    trained, _, _ = train(bf16, x, y, net=net)
    assert trained is net and net.get_layer("embedding").dtype_policy.name == "float32"
    assert any(not np.array_equal(a, b) for a, b in zip(before, net.get_weights()))
    assert any(not np.array_equal(a, b) for a, b in zip(before, net.get_weights()))


@pytest.mark.slow
def test_softmax_baseline_learns_and_checks_labels(tiny_data):
    x, y = tiny_data(240)
    recipe = Recipe("r", p=4, k=8, steps=30, embedding_dim=8, learning_rate=3e-3)
    net, clf, hist = train_softmax_baseline(recipe, x, y)
    assert net.output_shape == (None, 8) and clf.output_shape == (None, 4)
    assert len(hist["step_loss"]) == 30 and hist["images_per_step"] == 32
    assert hist["precision"] == "float32" and hist["stopped_at_step"] is None
    assert clf.get_layer("softmax").activation.__name__ == "softmax"
    assert np.mean(np.argmax(clf.predict(x, verbose=0), axis=1) == y) > 0.9
    assert "l2_normalize" not in [layer.name for layer in net.layers]
    with pytest.raises(ValueError, match="every class id"):
        train_softmax_baseline(recipe, x, y + 1)
    with pytest.raises(ValueError, match="one label per image"):
        train_softmax_baseline(recipe, x[:-1], y)
    with pytest.raises(ValueError, match="needs a recipe with steps"):
        train_softmax_baseline(SEED_RECIPE, x, y)


@pytest.mark.slow
def test_steps_per_execution_changes_nothing_but_speed(tiny_data):
    x, y = tiny_data(240)
    recipe = Recipe("r", mining="batch_all", p=4, k=6, steps=12, embedding_dim=8)
    recipe = dataclasses.replace(recipe, dropout=0.0)
    fast = dataclasses.replace(recipe, steps_per_execution=4)
    data = (x[:200], y[:200], x[200:], y[200:])
    net1, _, h1 = train(recipe, *data, monitor_every=4)
    net2, _, h2 = train(fast, *data, monitor_every=4)
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


@pytest.mark.slow
def test_fast_options_keep_the_interface(tiny_data):
    # fused branches, several steps per call and bfloat16 computations: same
    # outputs, a float32 network back
    x, y = tiny_data(240)
    recipe = dataclasses.replace(
        IMPROVED_RECIPE,
        epochs=1,
        p=4,
        k=12,  # 16 triplets a batch
        fused=True,
        steps_per_execution=4,
        precision="mixed_bfloat16",
    )
    net, model, hist = train(
        recipe, x[:200], y[:200], x[200:], y[200:], validate_every=8
    )
    assert hist["val_steps"] == [8, len(hist["step_loss"])]
    assert net.get_layer("embedding").dtype_policy.name == "float32"
    assert model.output.dtype == "float32"
    n_triplets = len(seed_offline_triplets(y[:200], seed=0))
    assert len(hist["step_loss"]) == n_triplets // 16  # random: whole batches only
    assert np.all(np.isfinite(hist["step_loss"]))
    e = net.predict(x[:4], verbose=0)
    assert e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert isinstance(net, keras.Model)


# --------------------------------------------------------------------------- #
# The compiled loop (recipe.loop == "compiled")
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "recipe",
    [
        Recipe("pk", mining="batch_hard", p=4, k=6, steps=5),
        Recipe("rnd", mining="random_triplets", p=4, k=6, steps=5),
        Recipe("fixed", mining="seed_triplets", p=4, k=6, steps=5),
        dataclasses.replace(SEED_RECIPE, p=4, k=12),  # by epochs, a short batch
    ],
    ids=lambda r: r.name,
)
def test_batch_schedule_is_the_pipelines_batches(tiny_data, recipe):
    x, y = tiny_data(120)
    xr = recipe_inputs(recipe, x)
    rows, starts, per_epoch = batch_schedule(recipe, y, seed=3)
    data, steps_per_epoch, epochs = training_data(recipe, xr, y, seed=3)
    n_steps = len(starts) - 1
    if recipe.steps is None:
        n_fixed = len(seed_offline_triplets(y, seed=3))
        assert per_epoch == -(-n_fixed // recipe.batch_size)
        assert n_steps == per_epoch * recipe.epochs
        assert starts[per_epoch] - starts[per_epoch - 1] == (
            n_fixed % recipe.batch_size or recipe.batch_size
        )
    else:
        assert n_steps == per_epoch == recipe.steps
    assert starts[0] == 0 and starts[-1] == len(rows)
    for s, (xb, yb) in enumerate(data.take(n_steps)):
        idx = rows[starts[s] : starts[s + 1]]
        if recipe.triplet_model:
            for j, name in enumerate(("anchor", "positive", "negative")):
                np.testing.assert_array_equal(xb[name].numpy(), xr[idx[:, j]])
        else:
            np.testing.assert_array_equal(xb.numpy(), xr[idx])
            np.testing.assert_array_equal(yb.numpy(), y[idx])


def test_batch_schedule_and_compiled_function_reject_bad_input(tiny_data):
    x, y = tiny_data(40)
    with pytest.raises(TypeError, match="recipe must be a Recipe"):
        batch_schedule("batch_all", y)
    with pytest.raises(TypeError, match="integer numpy array"):
        batch_schedule(Recipe("r", p=4, k=4, steps=2), y.astype(np.float32))
    with pytest.raises(ValueError, match="loop must be one of"):
        Recipe("r", loop="fast")
    recipe = Recipe("r", p=4, k=4, steps=2)
    net = build_recipe_net(recipe)
    with pytest.raises(TypeError, match="compiled keras.Model"):
        compiled_train_function(recipe, net, x, y, batch_schedule(recipe, y))
    net.compile(optimizer="adam", loss=make_loss(recipe))
    rows, starts, per_epoch = batch_schedule(recipe, y)
    with pytest.raises(ValueError, match="points at rows"):
        compiled_train_function(recipe, net, x[:10], y[:10], (rows, starts, per_epoch))


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe",
    [
        Recipe("pk", p=4, k=6, steps=12, embedding_dim=8, dropout=0.0),
        Recipe("rnd", mining="random_triplets", p=4, k=6, steps=12, dropout=0.0),
        dataclasses.replace(SEED_RECIPE, p=4, k=12, dropout=0.0),
    ],
    ids=lambda r: r.name,
)
def test_compiled_loop_trains_what_fit_trains(tiny_data, recipe):
    x, y = tiny_data(240)
    data = (x[:200], y[:200], x[200:], y[200:])
    kwargs = {"monitor_every": 4}
    if recipe.triplet_model:
        kwargs["validate_every"] = 4
    net1, _, h1 = train(recipe, *data, seed=2, **kwargs)
    fast = dataclasses.replace(recipe, loop="compiled", steps_per_execution=4)
    net2, _, h2 = train(fast, *data, seed=2, **kwargs)
    np.testing.assert_allclose(embed(net2, x[:20]), embed(net1, x[:20]), atol=1e-5)
    assert len(h2["step_loss"]) == len(h1["step_loss"])
    # fit reads the last (shorter) batch of an epoch as a weighted mean
    short = recipe.steps is None
    per_epoch = len(h1["step_loss"]) // len(h1["epoch_loss"])
    keep = [i for i in range(len(h1["step_loss"])) if not short or (i + 1) % per_epoch]
    np.testing.assert_allclose(
        np.array(h2["step_loss"])[keep], np.array(h1["step_loss"])[keep], rtol=1e-4
    )
    np.testing.assert_allclose(h2["epoch_loss"], h1["epoch_loss"], rtol=1e-4)
    assert [r["step"] for r in h2["monitor"]] == [r["step"] for r in h1["monitor"]]
    assert h2["monitor"][-1]["precision_at_1"] == pytest.approx(
        h1["monitor"][-1]["precision_at_1"]
    )
    if recipe.triplet_model:
        assert h2["val_steps"] == h1["val_steps"]
        np.testing.assert_allclose(h2["val_loss"], h1["val_loss"], rtol=1e-4)


@pytest.mark.slow
def test_compiled_loop_keeps_the_interface(tiny_data, tmp_path):
    # dropout, fused branches, bfloat16 and TensorBoard: a float32 network back,
    # callbacks at block ends, the optimizer's step count right
    x, y = tiny_data(240)
    recipe = dataclasses.replace(
        IMPROVED_RECIPE,
        epochs=1,
        p=4,
        k=12,
        fused=True,
        steps_per_execution=4,
        precision="mixed_bfloat16",
        loop="compiled",
    )

    class Steps(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append((batch, int(self.model.optimizer.iterations)))

    seen = Steps()
    net, model, hist = train(
        recipe,
        x[:200],
        y[:200],
        x[200:],
        y[200:],
        validate_every=8,
        log_dir=tmp_path / "logs",
        callbacks=[seen],
    )
    n_steps = len(seed_offline_triplets(y[:200], seed=0)) // 16
    assert len(hist["step_loss"]) == n_steps
    assert hist["val_steps"] == [8, n_steps]
    assert np.all(np.isfinite(hist["step_loss"]))
    assert int(model.optimizer.iterations) == n_steps
    # at each block's end the weights are those after that step
    assert all(it == b + 1 for b, it in seen.ends if (b + 1) % 4 == 0)
    assert net.get_layer("embedding").dtype_policy.name == "float32"
    e = net.predict(x[:4], verbose=0)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert list((tmp_path / "logs").rglob("events.out.tfevents.*"))


@pytest.mark.slow
def test_compiled_loop_stops_when_a_callback_says_so(tiny_data):
    x, y = tiny_data(120)
    recipe = Recipe(
        "r", p=4, k=6, steps=20, steps_per_execution=4, loop="compiled", dropout=0.0
    )

    class StopAt8(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch + 1 == 8:
                self.model.stop_training = True

    _, model, hist = train(recipe, x, y, callbacks=[StopAt8()])
    assert len(hist["step_loss"]) == 8 == int(model.optimizer.iterations)
    assert hist["epoch_loss"] == pytest.approx([np.mean(hist["step_loss"])])


def test_make_train_function_runs_n_steps_per_call_and_checks_input():
    import tensorflow as tf

    from tripletutils.distributed import make_train_function

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(0.1)
    x = tf.constant(np.random.default_rng(0).normal(size=(8, 3)), tf.float32)
    y = tf.reduce_sum(x, axis=1, keepdims=True)

    def next_batch(step):  # the same batch every step
        return x, y

    loss = keras.losses.MeanSquaredError()
    before = float(np.mean((model(x).numpy() - y.numpy()) ** 2))
    run = make_train_function(model, loss, optimizer, next_batch)
    losses = run(tf.constant(0, tf.int64), tf.constant(5, tf.int64)).numpy()
    assert losses.shape == (5,) and int(optimizer.iterations) == 5
    assert losses[0] == pytest.approx(before, rel=1e-5)  # the loss before step 1
    assert np.all(np.diff(losses) < 0)  # gradient descent on a fixed batch
    for args, match in (
        (("model", loss, optimizer, next_batch), "keras.Model"),
        ((model, loss, "sgd", next_batch), "keras optimizer"),
        ((model, loss, optimizer, None), "callable"),
    ):
        with pytest.raises(TypeError, match=match):
            make_train_function(*args)
    with pytest.raises(TypeError, match="split_batch must be a bool"):
        make_train_function(model, loss, optimizer, next_batch, split_batch=1)


# --------------------------------------------------------------------------- #
# What the new settings leave alone
# --------------------------------------------------------------------------- #
def _weights_equal(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(u, v) for u, v in zip(wa, wb))


@pytest.mark.slow
def test_train_runs_exactly_the_plain_pipeline(tiny_data):
    # train() (its checks, callbacks and non-finite watch) adds nothing to the
    # ops that change the weights: a hand-built fit gives the same bits
    x, y = tiny_data(200)
    recipe = Recipe("r", p=4, k=6, steps=6, embedding_dim=8)  # dropout: random
    net, _, _ = train(recipe, x, y, seed=3)
    keras.utils.set_random_seed(3)
    xt = recipe_inputs(recipe, x)
    plain = build_recipe_net(recipe, xt.shape[1:], seed=3)
    data, steps, epochs = training_data(recipe, xt, y, seed=3)
    _, model = build_training_model(recipe, plain)
    model.compile(optimizer=make_optimizer(recipe), loss=make_loss(recipe))
    model.fit(data, epochs=epochs, steps_per_epoch=steps, shuffle=False, verbose=0)
    assert _weights_equal(net, plain)


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["fit", "compiled"])
def test_new_defaults_spelled_out_change_nothing(tiny_data, loop):
    x, y = tiny_data(200)
    recipe = dataclasses.replace(BEST_RECIPE, p=4, k=6, steps=6, loop=loop)
    explicit = dataclasses.replace(
        recipe, loss="triplet", loss_options={}, augment=False
    )
    assert explicit == recipe
    runs = [
        train(recipe, x, y, seed=1)[0],
        train(explicit, x, y, seed=1, on_non_finite="raise")[0],
        train(recipe, x, y, seed=1)[0],
    ]
    assert _weights_equal(runs[0], runs[1]) and _weights_equal(runs[0], runs[2])


# --------------------------------------------------------------------------- #
# A loss that is not finite
# --------------------------------------------------------------------------- #
#: Adam at a learning rate of 1e6 on unnormalised embeddings: the weights jump
#: by about 1e6 at the first step and the distances overflow at the second.
DIVERGES = Recipe(
    "diverges",
    p=4,
    k=6,
    steps=8,
    embedding_dim=8,
    learning_rate=1e6,
    cosine_decay=False,
    l2_normalize=False,
    dropout=0.0,
)


@pytest.mark.slow
def test_a_diverging_run_stops_at_its_first_non_finite_step(tiny_data):
    x, y = tiny_data(200)
    exact = {}
    for loop, spe in (("fit", 1), ("compiled", 1), ("compiled", 4)):
        recipe = dataclasses.replace(DIVERGES, loop=loop, steps_per_execution=spe)
        _, model, hist = train(recipe, x, y, on_non_finite="stop")
        step = hist["stopped_at_step"]
        losses = np.array(hist["step_loss"])
        assert step is not None and step >= 2  # a finite loss first, then not
        assert np.all(np.isfinite(losses[: step - 1]))
        assert not np.isfinite(losses[step - 1])
        # training ended with the block of steps holding that step
        assert len(losses) == -(-step // spe) * spe < recipe.steps
        assert int(model.optimizer.iterations) == len(losses)
        exact[(loop, spe)] = step
        with pytest.raises(NonFiniteLossError) as raised:
            train(recipe, x, y)
        assert raised.value.step == step
        message = str(raised.value)
        assert "recipe 'diverges'" in message
        assert f"the training loss is {losses[step - 1]} at step {step} of 8" in message
    # the same batches and steps: every loop finds the same step
    assert len(set(exact.values())) == 1


@pytest.mark.slow
def test_fit_with_blocks_names_the_block_of_the_first_non_finite_step(tiny_data):
    x, y = tiny_data(200)
    one = train(DIVERGES, x, y, on_non_finite="stop")[2]["stopped_at_step"]
    recipe = dataclasses.replace(DIVERGES, steps_per_execution=4)
    hist = train(recipe, x, y, on_non_finite="stop")[2]
    first = 4 * ((one - 1) // 4) + 1  # fit reports one mean per block of 4
    assert hist["stopped_at_step"] == first
    assert len(hist["step_loss"]) == first + 3
    with pytest.raises(NonFiniteLossError, match=f"in steps {first}..{first + 3} of 8"):
        train(recipe, x, y)


@pytest.mark.slow
@pytest.mark.parametrize("head", ["softmax", "cosine"])
def test_softmax_baseline_stops_at_a_non_finite_loss(tiny_data, head):
    x, y = tiny_data(200)
    recipe = dataclasses.replace(DIVERGES, p=4, k=8)
    if head == "cosine":  # its logits are bounded: only overflowing features do it
        recipe = dataclasses.replace(recipe, learning_rate=1e12, raw_pixels=True)
    net, clf, hist = train_softmax_baseline(
        recipe, x, y, head=head, on_non_finite="stop"
    )
    step = hist["stopped_at_step"]
    losses = np.array(hist["step_loss"])
    assert step is not None and step >= 2 and len(losses) == step < recipe.steps
    assert np.all(np.isfinite(losses[:-1])) and not np.isfinite(losses[-1])
    with pytest.raises(NonFiniteLossError, match=f"at step {step} of 8") as raised:
        train_softmax_baseline(recipe, x, y, head=head)
    assert raised.value.step == step


def test_non_finite_options_and_heads_are_checked(tiny_data):
    x, y = tiny_data(40)
    r = Recipe("r", p=4, k=4, steps=2, embedding_dim=8)
    for bad in ("ignore", None, True):
        with pytest.raises(ValueError, match="on_non_finite must be one of"):
            train(r, x, y, on_non_finite=bad)
        with pytest.raises(ValueError, match="on_non_finite must be one of"):
            train_softmax_baseline(r, x, y, on_non_finite=bad)
    with pytest.raises(ValueError, match="head must be 'softmax' or 'cosine'"):
        train_softmax_baseline(r, x, y, head="arcface")
    for bad, error in ((0.0, ValueError), (-0.05, ValueError), ("0.05", TypeError)):
        with pytest.raises(error, match="temperature"):
            train_softmax_baseline(r, x, y, head="cosine", temperature=bad)


def test_non_finite_loss_error_carries_its_step():
    err = NonFiniteLossError("recipe 'r': the training loss is nan at step 3", 3)
    assert isinstance(err, FloatingPointError) and err.step == 3
    again = pickle.loads(pickle.dumps(err))  # e.g. back from a worker process
    assert type(again) is NonFiniteLossError
    assert again.step == 3 and str(again) == str(err)


# --------------------------------------------------------------------------- #
# Augmentation
# --------------------------------------------------------------------------- #
def _augmentation_layers(model):
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _augmentation_layers(layer)
        elif isinstance(
            layer, (keras.layers.RandomTranslation, keras.layers.RandomRotation)
        ):
            found.append(layer)
    return found


def test_build_training_model_puts_augmentation_in_front_in_training_only():
    recipe = Recipe("r", p=4, k=4, steps=2, embedding_dim=8, augment=True, dropout=0.0)
    net = build_recipe_net(recipe, seed=0)
    same, model = build_training_model(recipe, net, seed=4)
    assert same is net and model is not net
    assert not _augmentation_layers(net) and len(_augmentation_layers(model)) == 2
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(model(x, training=False), net(x))
    assert not np.allclose(model(x, training=True), net(x))
    with pytest.raises(TypeError, match="seed must be an int"):
        build_training_model(recipe, net, seed="4")


@pytest.mark.slow
def test_augmentation_trains_and_is_seeded(tiny_data):
    x, y = tiny_data(200)
    recipe = Recipe(
        "aug", p=4, k=6, steps=8, embedding_dim=8, dropout=0.0, augment=True
    )
    net, model, hist = train(recipe, x, y, seed=2)
    assert np.all(np.isfinite(hist["step_loss"])) and hist["stopped_at_step"] is None
    assert hist["recipe"]["augment"] is True
    again, _, _ = train(recipe, x, y, seed=2)
    assert _weights_equal(net, again)  # the same seed, the same transformations
    plain, _, _ = train(dataclasses.replace(recipe, augment=False), x, y, seed=2)
    assert not _weights_equal(net, plain)
    other, _, _ = train(recipe, x, y, seed=3)
    assert not _weights_equal(net, other)
    # the compiled loop draws the same transformations as fit
    compiled = dataclasses.replace(recipe, loop="compiled", steps_per_execution=4)
    net_c, _, hist_c = train(compiled, x, y, seed=2)
    np.testing.assert_allclose(hist_c["step_loss"], hist["step_loss"], rtol=1e-4)
    np.testing.assert_allclose(embed(net_c, x[:20]), embed(net, x[:20]), atol=1e-5)
    # inference has no augmentation: the returned net is the bare network
    assert not _augmentation_layers(net) and _augmentation_layers(model)
    probe = x[:6]
    first = net(probe).numpy()  # no training flag: Keras's random layers would act
    np.testing.assert_array_equal(net(probe).numpy(), first)
    np.testing.assert_array_equal(net(probe, training=True).numpy(), first)
    bare = build_recipe_net(recipe, seed=9)
    bare.set_weights(net.get_weights())
    np.testing.assert_array_equal(bare(probe).numpy(), first)
    np.testing.assert_array_equal(model(probe, training=False).numpy(), first)
    assert not np.allclose(model(probe, training=True).numpy(), first)


# --------------------------------------------------------------------------- #
# The cosine classifier baseline
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_cosine_baseline_learns_with_cos_over_temperature_logits(tiny_data):
    from tripletutils.models import CosineClassifier

    x, y = tiny_data(240)
    recipe = Recipe("r", p=4, k=8, steps=30, embedding_dim=8, learning_rate=3e-3)
    net, clf, hist = train_softmax_baseline(
        recipe, x, y, head="cosine", temperature=0.1
    )
    assert net.output_shape == (None, 8) and clf.output_shape == (None, 4)
    assert hist["stopped_at_step"] is None and hist["precision"] == "float32"
    assert len(hist["step_loss"]) == 30
    assert "cosine" not in [layer.name for layer in net.layers]
    head = clf.get_layer("cosine")
    assert isinstance(head, CosineClassifier) and head.temperature == 0.1
    assert len(head.get_weights()) == 1  # no bias
    probs = clf.predict(x, verbose=0)
    assert np.mean(np.argmax(probs, axis=1) == y) > 0.9
    # the probabilities are the softmax of cos(feature, w_c) / temperature
    f = net.predict(x, verbose=0).astype(np.float64)
    w = head.get_weights()[0].astype(np.float64)
    cos = (f / np.linalg.norm(f, axis=1, keepdims=True)) @ (
        w / np.linalg.norm(w, axis=0, keepdims=True)
    )
    logits = cos / 0.1
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    # augmentation applies to the baseline too, in training only
    aug = dataclasses.replace(recipe, augment=True, steps=4)
    net_a, clf_a, _ = train_softmax_baseline(aug, x, y, head="cosine", seed=1)
    net_p, _, _ = train_softmax_baseline(
        dataclasses.replace(aug, augment=False), x, y, head="cosine", seed=1
    )
    assert not _augmentation_layers(net_a) and _augmentation_layers(clf_a)
    assert not _weights_equal(net_a, net_p)


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["fit", "compiled"])
def test_train_in_mixed_float16(loop):
    """The precision Recipe accepts besides float32 and bfloat16, trained for real:
    float16 arithmetic, float32 weights and embeddings, finite losses, and a first
    step (before any update; no dropout, whose masks differ between the two
    networks) that agrees with float32 to float16's rounding."""
    # noise images of 10 classes: active triplets at every step, so every step has
    # a gradient (on the easy tiny_data batch-all's loss is 0 from the second step,
    # and a check that the weights moved would test the data, not the precision)
    x = np.random.default_rng(0).random((240, 28, 28, 1)).astype(np.float32)
    y = np.arange(240) % 10
    base = Recipe("r", p=4, k=6, steps=6, embedding_dim=8, loop=loop, dropout=0.0)
    half = dataclasses.replace(base, precision="mixed_float16")
    assert compute_precision(half) == "mixed_float16"  # kept as asked, any CPU
    start = [w.copy() for w in build_recipe_net(half, seed=0).get_weights()]
    net, _, hist = train(half, x[:200], y[:200], seed=0)
    assert hist["precision"] == "mixed_float16"
    assert np.all(np.isfinite(hist["step_loss"])) and len(hist["step_loss"]) == 6
    weights = net.get_weights()
    assert all(w.dtype == np.float32 and np.all(np.isfinite(w)) for w in weights)
    assert any(not np.array_equal(a, b) for a, b in zip(weights, start))  # it trained
    e = net(x[:4], training=False)
    assert e.dtype == "float32"
    _, _, ref = train(base, x[:200], y[:200], seed=0)
    assert hist["step_loss"][0] == pytest.approx(ref["step_loss"][0], rel=1e-2)
