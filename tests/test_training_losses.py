"""The pair and similarity losses through a Recipe: options, make_loss, training."""

import dataclasses
import json

import numpy as np
import pytest

from tripletutils import losses as L
from tripletutils.training import (
    LOSS_OPTIONS,
    LOSSES,
    MINING_SCHEMES,
    Recipe,
    make_loss,
    train,
)

CLASSES = {
    "contrastive": L.ContrastiveLoss,
    "multi_similarity": L.MultiSimilarityLoss,
    "supervised_contrastive": L.SupervisedContrastiveLoss,
}


def test_every_loss_and_option_is_a_setting_of_its_class():
    assert LOSSES[0] == "triplet" and set(LOSS_OPTIONS) == set(LOSSES)
    assert set(CLASSES) == set(LOSSES) - {"triplet"} and LOSS_OPTIONS["triplet"] == ()
    for loss, cls in CLASSES.items():
        made = make_loss(Recipe("r", loss=loss))
        assert type(made) is cls
        names = set(made.get_config()) - {"name", "reduction", "dtype", "squared"}
        assert names == set(LOSS_OPTIONS[loss])


@pytest.mark.parametrize(
    "loss, options, squared",
    [
        ("contrastive", {"neg_margin": 0.5}, False),
        ("contrastive", {"pos_margin": 0.1, "neg_margin": 1.5}, True),
        ("multi_similarity", {"alpha": 3.0, "beta": 40.0, "base": 0.3}, False),
        ("multi_similarity", {"epsilon": 0.0}, False),
        ("supervised_contrastive", {"temperature": 0.07}, False),
    ],
)
def test_make_loss_passes_the_options(loss, options, squared):
    made = make_loss(Recipe("r", loss=loss, loss_options=options, squared=squared))
    cls = CLASSES[loss]
    assert type(made) is cls
    config, default = made.get_config(), cls().get_config()
    for name in LOSS_OPTIONS[loss]:  # those given, the class's defaults otherwise
        assert config[name] == options.get(name, default[name])
    if loss == "contrastive":
        assert config["squared"] is squared
    # the loss made from the config is the same loss
    assert cls.from_config(config).get_config() == config


def test_triplet_loss_is_unchanged_by_the_new_fields():
    recipe = Recipe("r", mining="semi_hard", margin=0.3, squared=True)
    assert recipe.loss == "triplet" and recipe.loss_options == ()
    made = make_loss(recipe)
    assert type(made) is L.SemiHardTripletLoss
    assert (made.margin, made.squared) == (0.3, True)


def test_loss_options_dict_and_pairs_make_one_recipe():
    a = Recipe("r", loss="contrastive", loss_options={"neg_margin": 0.5})
    b = Recipe("r", loss="contrastive", loss_options=(("neg_margin", 0.5),))
    assert a == b and hash(a) == hash(b)
    assert a.loss_options == (("neg_margin", 0.5),)
    c = Recipe(
        "r",
        loss="multi_similarity",
        loss_options={"beta": 40, "alpha": np.float32(2.5)},  # stored sorted, floats
    )
    assert c.loss_options == (("alpha", 2.5), ("beta", 40.0))
    assert all(type(value) is float for _, value in c.loss_options)
    assert c == Recipe(
        "r", loss="multi_similarity", loss_options=[["beta", 40.0], ["alpha", 2.5]]
    )
    text = json.dumps(dataclasses.asdict(c))  # the cache key stays JSON
    assert Recipe(**json.loads(text)) == c  # and comes back as the same recipe
    assert dataclasses.replace(c, steps=10).loss_options == c.loss_options


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(loss="arcface"), ValueError, "loss must be one of"),
        (dict(loss=None), ValueError, "loss must be one of"),
        (
            dict(loss="contrastive", loss_options={"margin": 0.5}),
            ValueError,
            r"unknown loss_options \['margin'\] for loss='contrastive'",
        ),
        (
            dict(loss="supervised_contrastive", loss_options={"temperature": "0.1"}),
            TypeError,
            r"loss_options\['temperature'\] must be a real number, got str",
        ),
        (
            dict(loss="supervised_contrastive", loss_options={"temperature": None}),
            TypeError,
            "must be a real number",
        ),
        (
            dict(loss="supervised_contrastive", loss_options={"temperature": True}),
            TypeError,
            "must be a real number",
        ),
        (
            dict(loss="supervised_contrastive", loss_options={"temperature": -0.1}),
            ValueError,
            "temperature must be finite and positive, got -0.1",
        ),
        (
            dict(loss="supervised_contrastive", loss_options={"temperature": 0}),
            ValueError,
            "temperature must be finite and positive",
        ),
        (
            dict(loss="contrastive", loss_options={"neg_margin": float("nan")}),
            ValueError,
            "must be finite",
        ),
        (
            dict(
                loss="contrastive", loss_options={"pos_margin": 1.0, "neg_margin": 0.5}
            ),
            ValueError,
            "neg_margin must be greater than pos_margin",
        ),
        (
            dict(loss="contrastive", loss_options={"neg_margin": -1.0}),
            ValueError,
            "neg_margin must be finite and non-negative",
        ),
        (
            dict(loss="multi_similarity", loss_options={"base": 2.0}),
            ValueError,
            r"base must be a cosine similarity in \[-1, 1\]",
        ),
        (
            dict(loss="multi_similarity", loss_options={"alpha": 0.0}),
            ValueError,
            "alpha must be finite and positive",
        ),
        (
            dict(loss="contrastive", mining="seed_triplets"),
            ValueError,
            "mining must be 'batch_all', got 'seed_triplets'",
        ),
        (
            dict(loss="multi_similarity", mining="batch_hard"),
            ValueError,
            "scores every pair of the P x K batch",
        ),
        (
            dict(loss_options={"margin": 0.3}),
            ValueError,
            "loss='triplet' takes no loss_options",
        ),
        (
            dict(mining="seed_triplets", loss_options={"temperature": 0.1}),
            ValueError,
            "loss='triplet' takes no loss_options",
        ),
        (
            dict(loss="supervised_contrastive", squared=True),
            ValueError,
            "compares cosine similarities: squared must be False",
        ),
        (dict(loss="contrastive", loss_options="neg_margin=0.5"), TypeError, "dict"),
        (
            dict(loss="contrastive", loss_options=(("neg_margin",),)),
            TypeError,
            r"\(name, value\) pairs, got the item",
        ),
        (
            dict(loss="contrastive", loss_options={1: 0.5}),
            TypeError,
            "names must be str",
        ),
        (
            dict(
                loss="contrastive",
                loss_options=(("neg_margin", 0.5), ("neg_margin", 0.6)),
            ),
            ValueError,
            "each option once",
        ),
    ],
)
def test_recipe_rejects_bad_losses_and_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        Recipe("r", **kwargs)


def test_only_batch_all_takes_a_pair_loss():
    for scheme in MINING_SCHEMES:
        for loss in CLASSES:
            if scheme == "batch_all":
                assert Recipe("r", mining=scheme, loss=loss).loss == loss
            else:
                with pytest.raises(ValueError, match="mining must be 'batch_all'"):
                    Recipe("r", mining=scheme, loss=loss)


@pytest.mark.slow
@pytest.mark.parametrize(
    "loss, options",
    [
        ("contrastive", {"neg_margin": 1.0}),
        ("multi_similarity", {}),
        ("supervised_contrastive", {"temperature": 0.1}),
    ],
)
def test_pair_losses_train_in_both_loops(tiny_data, loss, options):
    x, y = tiny_data(240)
    # fainter bands: on the plain ones the untrained network already separates
    # the classes so well that multi-similarity mines no pair (a loss of 0)
    noise = np.random.default_rng(0).random(x.shape)
    x = (0.25 * x + 0.75 * noise).astype(np.float32)
    recipe = Recipe(
        "pairs",
        loss=loss,
        loss_options=options,
        p=4,
        k=6,
        steps=20,
        embedding_dim=8,
        learning_rate=3e-3,
        dropout=0.0,
    )
    data = (x[:200], y[:200], x[200:], y[200:])
    nets, histories = [], []
    for loop in ("fit", "compiled"):
        r = dataclasses.replace(recipe, loop=loop, steps_per_execution=4)
        net, _, hist = train(r, *data, seed=1, monitor_every=20)
        assert len(hist["step_loss"]) == 20 and hist["stopped_at_step"] is None
        losses = np.array(hist["step_loss"])
        assert np.all(np.isfinite(losses))
        assert losses[-8:].mean() < losses[:4].mean()  # it learns
        assert hist["recipe"]["loss"] == loss
        nets.append(net)
        histories.append(hist)
    # the compiled loop trains what fit trains
    e = [n.predict(x[:20], verbose=0) for n in nets]
    np.testing.assert_allclose(e[1], e[0], atol=1e-5)
    assert histories[1]["monitor"][-1]["precision_at_1"] == pytest.approx(
        histories[0]["monitor"][-1]["precision_at_1"]
    )


@pytest.mark.parametrize(
    "loss, settings, match",
    [
        ("contrastive", {"pos_margin": 0.5, "neg_margin": 0.5}, "greater than"),
        ("contrastive", {"pos_margin": -0.1}, "non-negative"),
        ("multi_similarity", {"alpha": 0.0}, "positive"),
        ("multi_similarity", {"base": 1.5}, r"\[-1, 1\]"),
        ("multi_similarity", {"base": float("nan")}, r"\[-1, 1\]"),
        ("supervised_contrastive", {"temperature": -0.1}, "positive"),
        ("triplet", {}, "one of"),
    ],
)
def test_pair_loss_settings_rejects_what_the_loss_rejects(loss, settings, match):
    with pytest.raises(ValueError, match=match):
        L.pair_loss_settings(loss, **settings)
    if loss in CLASSES:  # the loss function and its class reject it alike
        fn = CLASSES[loss]._fn
        with pytest.raises(ValueError, match=match):
            fn([0, 1], [[0.0, 1.0], [1.0, 0.0]], **settings)
        with pytest.raises(ValueError, match=match):
            CLASSES[loss](**settings)


def test_pair_loss_settings_gives_every_setting_checked():
    assert L.pair_loss_settings("contrastive") == {
        "pos_margin": 0.0,
        "neg_margin": 1.0,
        "squared": False,
    }
    got = L.pair_loss_settings("multi_similarity", alpha=1, beta=40)
    assert got == {"alpha": 1.0, "beta": 40.0, "base": 0.5, "epsilon": 0.1}
    assert all(type(v) is float for v in got.values())
    with pytest.raises(TypeError):
        L.pair_loss_settings("contrastive", margin=0.2)  # not a setting of it
    with pytest.raises(TypeError):
        L.pair_loss_settings("supervised_contrastive", temperature="0.1")
    with pytest.raises(TypeError):
        L.pair_loss_settings(3)


def test_a_pair_loss_recipe_starts_no_runtime():
    """An engine worker sets one thread after importing the experiments module,
    whose recipes are built at import: building one must run no operation."""
    import subprocess
    import sys

    code = (
        "from tripletutils.training import Recipe\n"
        "import tensorflow as tf\n"
        "for loss in ('contrastive', 'multi_similarity', 'supervised_contrastive'):\n"
        "    Recipe('r', loss=loss)\n"
        "tf.config.threading.set_intra_op_parallelism_threads(1)\n"
        "tf.config.threading.set_inter_op_parallelism_threads(1)\n"
        "print('threads set')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "threads set" in out.stdout
