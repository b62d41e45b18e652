import keras
import numpy as np
import pytest

from tripletutils.losses import BatchHardTripletLoss, OfflineTripletLoss
from tripletutils.models import L2Normalize, build_embedding_net, build_triplet_model


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
