import numpy as np
import pytest

from tripletutils.evaluation import (
    embed,
    format_seed_log,
    per_class_report,
    seed_metric,
    triplet_gaps,
)
from tripletutils.models import build_embedding_net


def test_embed_matches_predict():
    net = build_embedding_net(embedding_dim=8, seed=0)
    x = np.random.default_rng(0).random((37, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(
        embed(net, x, batch_size=16), net.predict(x, verbose=0), atol=1e-5
    )
    assert embed(net, x[:0]).shape == (0, 8)


def test_embed_rejects_bad_input():
    net = build_embedding_net(embedding_dim=8, seed=0)
    with pytest.raises(ValueError, match="shape"):
        embed(net, np.zeros((2, 28, 28), np.float32))
    with pytest.raises(TypeError, match="keras.Model"):
        embed("net", np.zeros((2, 28, 28, 1)))
    with pytest.raises(ValueError, match="at least 1"):
        embed(net, np.zeros((2, 28, 28, 1)), batch_size=0)


def test_gaps_and_seed_metric_hand_made():
    e = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    t = np.array([[0, 1, 2], [0, 2, 1], [0, 3, 1]])
    np.testing.assert_allclose(triplet_gaps(e, t), [1 - 4, 4 - 1, 9 - 1])
    np.testing.assert_allclose(triplet_gaps(e, t, squared=False), [1 - 2, 2 - 1, 3 - 1])
    assert seed_metric(triplet_gaps(e, t)) == pytest.approx(1 / 3)
    assert seed_metric(np.array([0.0, -1.0])) == 0.5  # a tie counts as wrong


def test_per_class_report_and_log():
    gaps = np.array([-3.0, -1.0, 2.0, -5.0])
    labels = np.array([0, 0, 0, 1])
    rows = per_class_report(gaps, labels)
    assert rows[0] == {
        "clz": 0,
        "n": 3,
        "min": -3.0,
        "max": 2.0,
        "avg": -2 / 3,
        "acc": 2 / 3,
    }
    assert rows[1]["acc"] == 1.0
    log = format_seed_log(rows).splitlines()
    assert log[:3] == [
        "clz 0",
        "distance - min: -3.0000, max: 2.0000, avg: -0.6667",
        "acc: 0.6667",
    ]


def test_evaluation_bad_inputs():
    with pytest.raises(ValueError, match="non-empty"):
        seed_metric(np.array([]))
    with pytest.raises(ValueError, match="NaN"):
        seed_metric(np.array([np.nan]))
    with pytest.raises(ValueError, match="0..1"):
        triplet_gaps(np.zeros((2, 2)), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="same length"):
        per_class_report(np.zeros(3), np.zeros(2, int))
    with pytest.raises(ValueError, match="class 5 has no triplet"):
        per_class_report(np.zeros(2), np.zeros(2, int), classes=[0, 5])
    with pytest.raises(ValueError, match="lacks key"):
        format_seed_log([{"clz": 0}])


def test_triplet_difficulty_hand_made():
    from tripletutils.evaluation import DIFFICULTY_NAMES, triplet_difficulty

    d_ap = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    d_an = np.array([3.0, 2.0, 1.5, 1.0, 0.2])
    codes = triplet_difficulty(d_ap, d_an, margin=1.0)
    assert [DIFFICULTY_NAMES[c] for c in codes] == [
        "easy",
        "easy",
        "semi-hard",
        "hard",
        "hard",
    ]
    with pytest.raises(ValueError, match="same shape"):
        triplet_difficulty(d_ap, d_an[:2])
    with pytest.raises(ValueError, match="non-negative"):
        triplet_difficulty(d_ap, d_an, margin=-1)


def test_mixed_precision_copy():
    import keras

    from tripletutils.evaluation import embed
    from tripletutils.models import (
        build_embedding_net,
        build_lenet_backbone,
        mixed_precision_copy,
    )

    net = build_embedding_net(
        backbone=build_lenet_backbone(seed=0),
        embedding_dim=16,
        activation=None,
        l2_normalize=True,
        seed=0,
    )
    copy = mixed_precision_copy(net)
    inner = [layer for layer in copy.layers if isinstance(layer, keras.Model)][0]
    assert all(l.dtype_policy.name == "mixed_bfloat16" for l in inner.layers[1:])
    assert copy.get_layer("embedding").dtype_policy.name == "mixed_bfloat16"
    assert (
        net.get_layer("embedding").dtype_policy.name == "float32"
    )  # original unchanged
    x = np.random.default_rng(0).random((16, 28, 28, 1)).astype(np.float32)
    a, b = embed(net, x), embed(copy, x)
    assert b.dtype == np.float32
    assert 0 < np.max(np.abs(a - b)) < 0.03  # bfloat16 rounding, nothing worse
    for w1, w2 in zip(net.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(w1, w2)
    with pytest.raises(ValueError, match="unknown dtype policy"):
        mixed_precision_copy(net, "float8")
    with pytest.raises(TypeError, match="keras.Model"):
        mixed_precision_copy("net")


def test_embed_does_not_keep_models_alive():
    import gc
    import weakref

    from tripletutils.evaluation import _COMPILED

    net = build_embedding_net(embedding_dim=4, seed=0)
    embed(net, np.zeros((2, 28, 28, 1), np.float32))
    assert net in _COMPILED
    ref = weakref.ref(net)
    del net
    gc.collect()
    assert ref() is None, "embed's cache kept a deleted model alive"
