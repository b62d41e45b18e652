import keras
import numpy as np
import pytest

from tripletutils.losses import BatchHardTripletLoss, OfflineTripletLoss
from tripletutils.models import (
    CosineClassifier,
    L2Normalize,
    build_augmentation,
    build_embedding_net,
    build_triplet_model,
)


def test_seed_network_layers_and_parameter_count():
    net = build_embedding_net()
    assert net.count_params() == 112_096
    kinds = [type(l).__name__ for l in net.layers[1:]]
    assert kinds == [
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Dropout",
        "Flatten",
        "Dense",
    ]
    assert net.output_shape == (None, 128)
    assert net.layers[-1].activation.__name__ == "relu"


def test_options():
    net = build_embedding_net(
        embedding_dim=16, activation=None, l2_normalize=True, seed=0
    )
    out = net(
        np.random.default_rng(0).random((5, 28, 28, 1)).astype(np.float32)
    ).numpy()
    assert out.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert (out < 0).any()  # linear head, not relu


def test_custom_backbone():
    backbone = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(8)]
    )
    net = build_embedding_net(embedding_dim=4, backbone=backbone)
    assert net.output_shape == (None, 4)
    assert net.count_params() == backbone.count_params() + 8 * 4 + 4
    with pytest.raises(ValueError, match="backbone takes inputs"):
        build_embedding_net(input_shape=(32, 32, 3), backbone=backbone)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 1"):
        build_embedding_net(embedding_dim=0)
    with pytest.raises(TypeError, match="keras.Model"):
        build_embedding_net(backbone="resnet")
    with pytest.raises(TypeError, match="keras.Model"):
        build_triplet_model(object())


def test_l2_normalize_zero_vector_stays_finite():
    out = L2Normalize()(np.zeros((2, 3), np.float32)).numpy()
    assert np.all(np.isfinite(out)) and np.all(out == 0)


def test_triplet_model_shares_weights():
    net = build_embedding_net(embedding_dim=8, seed=0)
    model = build_triplet_model(net)
    assert [i.name for i in model.inputs] == ["anchor", "positive", "negative"]
    assert model.output_shape == (None, 24)
    assert model.count_params() == net.count_params()  # one set of weights
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    out = model.predict({"anchor": x, "positive": x, "negative": x}, verbose=0)
    np.testing.assert_allclose(out[:, :8], out[:, 8:16], atol=1e-6)
    np.testing.assert_allclose(out[:, :8], out[:, 16:], atol=1e-6)
    # changing the shared net changes every branch
    w = net.layers[-1].kernel
    w.assign(w.numpy() + 1.0)
    out2 = model.predict({"anchor": x, "positive": x, "negative": x}, verbose=0)
    assert not np.allclose(out, out2)
    np.testing.assert_allclose(out2[:, :8], out2[:, 16:], atol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    net = build_embedding_net(
        embedding_dim=8, activation=None, l2_normalize=True, seed=1
    )
    model = build_triplet_model(net)
    model.compile(optimizer="adam", loss=OfflineTripletLoss(margin=0.7, squared=False))
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
    inputs = {"anchor": x, "positive": x[::-1], "negative": x}
    before = model.predict(inputs, verbose=0)
    model.save(tmp_path / "triplet.keras")
    net.save(tmp_path / "embedding.keras")
    loaded = keras.models.load_model(tmp_path / "triplet.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), before, atol=1e-6)
    assert isinstance(loaded.loss, OfflineTripletLoss)
    assert loaded.loss.margin == 0.7 and loaded.loss.squared is False
    alone = keras.models.load_model(tmp_path / "embedding.keras", safe_mode=True)
    np.testing.assert_allclose(alone.predict(x, verbose=0), before[:, :8], atol=1e-6)


def test_online_model_save_and_load(tmp_path):
    net = build_embedding_net(embedding_dim=4, seed=2)
    net.compile(optimizer="adam", loss=BatchHardTripletLoss(margin=0.3))
    net.save(tmp_path / "online.keras")
    loaded = keras.models.load_model(tmp_path / "online.keras", safe_mode=True)
    assert isinstance(loaded.loss, BatchHardTripletLoss) and loaded.loss.margin == 0.3


def test_dropout_option():
    kinds = [type(l).__name__ for l in build_embedding_net(dropout=0.0).layers]
    assert "Dropout" not in kinds
    assert build_embedding_net(dropout=0.0).count_params() == 112_096
    with pytest.raises(ValueError, match="dropout"):
        build_embedding_net(dropout=1.5)


def test_fused_triplet_model_equals_three_branches(tmp_path):
    net = build_embedding_net(embedding_dim=8, seed=3)
    plain = build_triplet_model(net)
    fused = build_triplet_model(net, fused=True)
    assert fused.count_params() == plain.count_params() == net.count_params()
    assert [i.name for i in fused.inputs] == ["anchor", "positive", "negative"]
    assert fused.output_shape == (None, 24)
    rng = np.random.default_rng(0)
    inputs = {
        k: rng.random((5, 28, 28, 1)).astype(np.float32)
        for k in ("anchor", "positive", "negative")
    }
    expected = np.concatenate(
        [net.predict(inputs[k], verbose=0) for k in ("anchor", "positive", "negative")],
        axis=1,
    )
    np.testing.assert_allclose(fused.predict(inputs, verbose=0), expected, atol=1e-5)
    np.testing.assert_allclose(plain.predict(inputs, verbose=0), expected, atol=1e-5)
    fused.save(tmp_path / "fused.keras")
    loaded = keras.models.load_model(tmp_path / "fused.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), expected, atol=1e-5)
    with pytest.raises(TypeError, match="fused"):
        build_triplet_model(net, fused="yes")


def test_fused_training_step_gradients_match():
    # with dropout off, one step of the fused model gives the same loss and weights
    import tensorflow as tf

    x = np.random.default_rng(1).random((6, 28, 28, 1)).astype(np.float32)
    inputs = {"anchor": x[:2], "positive": x[2:4], "negative": x[4:]}
    results = []
    for fused in (False, True):
        net = build_embedding_net(embedding_dim=8, seed=4, dropout=0.0)
        model = build_triplet_model(net, fused=fused)
        with tf.GradientTape() as tape:
            loss = OfflineTripletLoss()(
                np.zeros(2, np.float32), model(inputs, training=True)
            )
        grads = tape.gradient(loss, model.trainable_weights)
        results.append((float(loss), [g.numpy() for g in grads]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- #
# CosineClassifier
# --------------------------------------------------------------------------- #
def _unit(a, axis):
    norm = np.linalg.norm(a, axis=axis, keepdims=True)
    return np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)


def test_cosine_classifier_is_cosine_over_temperature():
    features = np.array(
        [[3.0, 4.0, 0.0], [0.0, -2.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]],
        np.float32,
    )
    kernel = np.array(
        [[1.0, 0.0, -1.0, 2.0], [0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 1.0]],
        np.float32,
    )  # (dim, n_classes): column c is w_c
    layer = CosineClassifier(4, temperature=0.25)
    layer.build((None, 3))
    layer.kernel.assign(kernel)
    out = layer(features).numpy()
    expected = _unit(features, 1) @ _unit(kernel, 0) / 0.25
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    # by hand: [3, 4, 0] against w_0 = [1, 0, 0] is cos 0.6, w_2 = [-1, 0, 0] is -0.6
    assert out[0, 0] == pytest.approx(0.6 / 0.25) and out[0, 2] == pytest.approx(-2.4)
    assert np.all(out[3] == 0)  # a zero feature vector gives zero logits, not NaN
    assert np.all(np.abs(out) <= 1 / 0.25 + 1e-6)
    # scaling a feature or a class vector changes nothing
    layer.kernel.assign(kernel * np.array([5.0, 0.5, 2.0, 3.0], np.float32))
    np.testing.assert_allclose(layer(features * 7).numpy(), out, rtol=1e-5, atol=1e-6)


def test_cosine_classifier_gradients_are_finite_at_zero():
    import tensorflow as tf

    layer = CosineClassifier(3, seed=0)
    x = tf.zeros((2, 4))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(layer(x))
    grads = tape.gradient(out, [x, layer.kernel])
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_cosine_classifier_serialises(tmp_path):
    layer = CosineClassifier(5, temperature=0.1, seed=7, name="cosine")
    config = layer.get_config()
    assert (config["n_classes"], config["temperature"], config["seed"]) == (5, 0.1, 7)
    again = CosineClassifier.from_config(config)
    assert again.get_config() == config
    inputs = keras.Input((3,))
    model = keras.Model(inputs, CosineClassifier(5, 0.1, seed=7, name="cos")(inputs))
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "cosine.keras")
    loaded = keras.models.load_model(tmp_path / "cosine.keras", safe_mode=True)
    assert isinstance(loaded.get_layer("cos"), CosineClassifier)
    assert loaded.get_layer("cos").temperature == 0.1
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, atol=1e-6)
    # the seed makes the initial weights
    a, b = CosineClassifier(5, seed=7), CosineClassifier(5, seed=7)
    a.build((None, 3)), b.build((None, 3))
    np.testing.assert_array_equal(a.kernel.numpy(), b.kernel.numpy())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_classes=1), ValueError, "at least 2"),
        (dict(n_classes=0), ValueError, "at least 2"),
        (dict(n_classes=3.0), TypeError, "n_classes must be an int"),
        (dict(n_classes=True), TypeError, "n_classes must be an int"),
        (dict(n_classes=3, temperature=0.0), ValueError, "finite and positive"),
        (dict(n_classes=3, temperature=-0.1), ValueError, "finite and positive"),
        (dict(n_classes=3, temperature=float("inf")), ValueError, "finite"),
        (dict(n_classes=3, temperature="0.1"), TypeError, "real number"),
        (dict(n_classes=3, seed=1.5), TypeError, "seed"),
    ],
)
def test_cosine_classifier_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        CosineClassifier(**kwargs)


def test_cosine_classifier_needs_flat_features():
    with pytest.raises(ValueError, match=r"\(batch, dim\)"):
        CosineClassifier(3)(np.zeros((2, 4, 4), np.float32))


# --------------------------------------------------------------------------- #
# build_augmentation
# --------------------------------------------------------------------------- #
def _bars(n=64):
    x = np.zeros((n, 28, 28, 1), np.float32)
    x[:, 13:15, 4:24] = 1.0  # a horizontal bar through the centre
    return x


def _angle_and_centre(image):
    """Orientation (degrees) of the main axis of the bright pixels, and their centre."""
    ys, xs = np.nonzero(image[..., 0] > 0)
    w = image[ys, xs, 0]
    cy, cx = np.average(ys, weights=w), np.average(xs, weights=w)
    vecs = np.linalg.eigh(np.cov(np.stack([xs - cx, ys - cy]), aweights=w))[1]
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    return (angle + 90) % 180 - 90, cy, cx


def test_augmentation_rotates_up_to_10_degrees():
    x = _bars()
    out = build_augmentation(max_shift=0.0, seed=3)(x, training=True).numpy()
    angles = np.abs([_angle_and_centre(im)[0] for im in out])
    assert angles.max() <= 10.0 + 0.5 and angles.max() > 5.0  # turns, not too far


def test_augmentation_shifts_up_to_a_tenth_of_the_image():
    x = _bars()
    out = build_augmentation(max_degrees=0.0, seed=3)(x, training=True).numpy()
    centre = np.array(_angle_and_centre(x[0])[1:])
    moved = np.abs([np.array(_angle_and_centre(im)[1:]) - centre for im in out])
    assert moved.max() <= 2.8 + 0.1 and moved.max(axis=0).min() > 1.0  # both axes
    angles = np.abs([_angle_and_centre(im)[0] for im in out])
    assert angles.max() < 0.5  # no rotation asked


def test_augmentation_is_seeded_and_off_outside_training():
    x = _bars(8)
    aug = build_augmentation(seed=5)
    first = aug(x, training=True).numpy()
    assert first.shape == x.shape and first.dtype == np.float32
    assert not np.array_equal(first, x)
    assert not np.array_equal(aug(x, training=True).numpy(), first)  # new draws
    np.testing.assert_array_equal(
        build_augmentation(seed=5)(x, training=True).numpy(), first
    )
    other = build_augmentation(seed=6)(x, training=True).numpy()
    assert not np.array_equal(other, first)
    np.testing.assert_array_equal(aug(x, training=False).numpy(), x)
    np.testing.assert_array_equal(aug.predict(x, verbose=0), x)
    assert first.min() >= 0 and first.max() <= 1  # filled with the background


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(max_shift=1.0), ValueError, "max_shift must lie in"),
        (dict(max_shift=-0.1), ValueError, "max_shift must lie in"),
        (dict(max_shift=float("nan")), ValueError, "max_shift must lie in"),
        (dict(max_shift="0.1"), TypeError, "max_shift must be a real number"),
        (dict(max_degrees=200.0), ValueError, "max_degrees must lie in"),
        (dict(max_degrees=None), TypeError, "max_degrees must be a real number"),
        (dict(seed=1.5), TypeError, "seed"),
        (dict(input_shape=(28, 28)), ValueError, "height, width, channels"),
    ],
)
def test_augmentation_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_augmentation(**kwargs)
