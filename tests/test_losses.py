"""Each loss against a plain NumPy loop, on random and hand-made batches."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tripletutils import losses as L

TOL = 1e-5


# ----------------------------------------------------------------- references
def np_dist(e, squared):
    n = len(e)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            d[i, j] = np.sum((e[i] - e[j]) ** 2)
    return d if squared else np.sqrt(d)


def np_batch_all(y, e, margin, squared):
    d = np_dist(e, squared)
    vals = []
    for a, p, n in itertools.product(range(len(y)), repeat=3):
        if a != p and y[a] == y[p] and y[n] != y[a]:
            vals.append(max(d[a, p] - d[a, n] + margin, 0.0))
    vals = np.array(vals)
    if len(vals) == 0:
        return 0.0, 0.0
    active = vals > 1e-16
    return (vals[active].mean() if active.any() else 0.0), active.mean()


def np_hardest(y, e, squared):
    d = np_dist(e, squared)
    out = []
    for a in range(len(y)):
        pos = [d[a, p] for p in range(len(y)) if p != a and y[p] == y[a]]
        neg = [d[a, n] for n in range(len(y)) if y[n] != y[a]]
        if pos and neg:
            out.append((max(pos), min(neg)))
    return out


def np_batch_hard(y, e, margin, squared):
    pairs = np_hardest(y, e, squared)
    return np.mean([max(hp - hn + margin, 0) for hp, hn in pairs]) if pairs else 0.0


def np_soft(y, e, squared):
    pairs = np_hardest(y, e, squared)
    return np.mean([np.log1p(np.exp(hp - hn)) for hp, hn in pairs]) if pairs else 0.0


def np_semi_hard(y, e, margin, squared):
    d = np_dist(e, squared)
    vals = []
    for a in range(len(y)):
        negs = [d[a, n] for n in range(len(y)) if y[n] != y[a]]
        if not negs:
            continue
        for p in range(len(y)):
            if p == a or y[p] != y[a]:
                continue
            outside = [x for x in negs if x > d[a, p]]
            dn = min(outside) if outside else max(negs)
            vals.append(max(d[a, p] - dn + margin, 0.0))
    return np.mean(vals) if vals else 0.0


def np_offline(e3, margin, squared):
    dim = e3.shape[1] // 3
    a, p, n = e3[:, :dim], e3[:, dim : 2 * dim], e3[:, 2 * dim :]
    dap, dan = np.sum((a - p) ** 2, 1), np.sum((a - n) ** 2, 1)
    if not squared:
        dap, dan = np.sqrt(dap), np.sqrt(dan)
    return np.maximum(dap - dan + margin, 0)


def random_batch(rng, n=12, dim=4, classes=3):
    y = rng.integers(0, classes, n)
    e = rng.normal(size=(n, dim)).astype(np.float32)
    return y, e


ONLINE = {
    "batch_all": (
        lambda y, e, m, s: L.batch_all_triplet_loss(y, e, m, s)[0],
        lambda y, e, m, s: np_batch_all(y, e, m, s)[0],
    ),
    "batch_hard": (L.batch_hard_triplet_loss, np_batch_hard),
    "semi_hard": (L.semi_hard_triplet_loss, np_semi_hard),
    "soft_margin": (
        lambda y, e, m, s: L.soft_margin_triplet_loss(y, e, s),
        lambda y, e, m, s: np_soft(y, e, s),
    ),
}


# ---------------------------------------------------------------- distances
@pytest.mark.parametrize("squared", [True, False])
def test_pairwise_distances_match_numpy(rng, squared):
    e = rng.normal(size=(9, 5)).astype(np.float32)
    np.testing.assert_allclose(
        L.pairwise_distances(e, squared=squared),
        np_dist(e, squared),
        atol=TOL,
        rtol=TOL,
    )


def test_pairwise_distances_hand_made():
    e = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]], np.float32)
    expected = np.array([[0, 5, 0], [5, 0, 5], [0, 5, 0]], np.float32)
    np.testing.assert_allclose(L.pairwise_distances(e), expected, atol=1e-6)
    np.testing.assert_allclose(
        L.pairwise_distances(e, squared=True), expected**2, atol=1e-5
    )


def test_pairwise_gradient_finite_at_zero_distance():
    e = tf.Variable([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]])
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(L.pairwise_distances(e))
    grad = tape.gradient(total, e).numpy()
    assert np.all(np.isfinite(grad))


def test_naive_sqrt_gradient_is_nan_at_zero():
    """The failure the safe version prevents (this is what chapter 3 shows)."""
    e = tf.Variable([[1.0, 2.0], [1.0, 2.0]])
    with tf.GradientTape() as tape:
        d2 = tf.reduce_sum(tf.square(e[:, None] - e[None]), -1)
        total = tf.reduce_sum(tf.sqrt(d2))
    assert np.isnan(tape.gradient(total, e).numpy()).any()


def test_pairwise_rejects_bad_input():
    with pytest.raises(ValueError, match=r"shape \(batch, dim\)"):
        L.pairwise_distances(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="squared must be a bool"):
        L.pairwise_distances(np.zeros((2, 2), np.float32), squared="yes")


# ---------------------------------------------------------------- offline loss
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("dim", [2, 7, 128])
def test_offline_loss_matches_numpy(rng, squared, dim):
    e3 = rng.normal(size=(16, 3 * dim)).astype(np.float32)
    got = L.offline_triplet_loss(e3, margin=0.5, squared=squared)
    np.testing.assert_allclose(got, np_offline(e3, 0.5, squared), atol=TOL, rtol=TOL)


def test_offline_loss_hand_made():
    # a=(0,0), p=(1,0), n=(0,2): squared 1 - 4 + 1 = -2 -> 0; plain 1 - 2 + 1 = 0
    # a=(0,0), p=(0,3), n=(1,0): squared 9 - 1 + 1 = 9; plain 3 - 1 + 1 = 3
    e3 = np.array([[0, 0, 1, 0, 0, 2], [0, 0, 0, 3, 1, 0]], np.float32)
    np.testing.assert_allclose(L.offline_triplet_loss(e3), [0.0, 9.0], atol=1e-6)
    np.testing.assert_allclose(
        L.offline_triplet_loss(e3, squared=False), [0.0, 3.0], atol=1e-6
    )
    np.testing.assert_allclose(L.OfflineTripletLoss()(np.zeros(2), e3), 4.5, atol=1e-6)


def test_offline_loss_gradient_finite_when_anchor_equals_positive():
    e3 = tf.Variable(np.array([[1, 1, 1, 1, 0, 0]], np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(L.offline_triplet_loss(e3, squared=False))
    assert np.all(np.isfinite(tape.gradient(loss, e3).numpy()))


def test_offline_loss_rejects_bad_width_and_margin():
    with pytest.raises(ValueError, match="multiple of 3"):
        L.offline_triplet_loss(np.zeros((2, 7), np.float32))
    with pytest.raises(ValueError, match="non-negative"):
        L.offline_triplet_loss(np.zeros((2, 6), np.float32), margin=-1.0)
    with pytest.raises(TypeError, match="margin must be a float"):
        L.OfflineTripletLoss(margin="1")


# ---------------------------------------------------------------- online losses
@pytest.mark.parametrize("name", sorted(ONLINE))
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("trial", range(3))
def test_online_losses_match_numpy(name, squared, trial):
    rng = np.random.default_rng(trial)
    y, e = random_batch(rng, n=10 + trial, classes=2 + trial)
    ours, ref = ONLINE[name]
    got = float(ours(y, e, 0.5, squared))
    np.testing.assert_allclose(got, ref(y, e, 0.5, squared), atol=TOL, rtol=TOL)


def test_batch_all_fraction_matches_numpy(rng):
    y, e = random_batch(rng)
    _, frac = L.batch_all_triplet_loss(y, e, margin=0.3)
    assert abs(float(frac) - np_batch_all(y, e, 0.3, False)[1]) < TOL


def test_online_hand_made_batch():
    # 1-D embeddings: class 0 at 0 and 1, class 1 at 3 and 10.
    y = np.array([0, 0, 1, 1])
    e = np.array([[0.0], [1.0], [3.0], [10.0]], np.float32)
    # batch-hard, margin 1: anchor0 max(1-3+1,0)=0; a1: max(1-2+1,0)=0;
    # a2: hp=7, hn=2 -> 6; a3: hp=7, hn=9 -> 0  => mean 1.5
    assert float(L.batch_hard_triplet_loss(y, e, margin=1.0)) == pytest.approx(1.5)
    # batch-all, d(a,p) - d(a,n) + 1 for the 8 valid triplets:
    # (0,1,2)=-1, (0,1,3)=-8, (1,0,2)=0, (1,0,3)=-7, (2,3,0)=5, (2,3,1)=6,
    # (3,2,0)=-2, (3,2,1)=-1: active 5 and 6 (0 is not active)
    loss, frac = L.batch_all_triplet_loss(y, e, margin=1.0)
    assert float(loss) == pytest.approx(5.5) and float(frac) == pytest.approx(2 / 8)
    # semi-hard: pair (2,3) d=7, negatives 3, 2: none > 7 -> farthest 3 -> 7-3+1=5
    # pair (3,2) d=7, negatives 10, 9: closest beyond 7 is 9 -> 7-9+1=0
    # pairs (0,1),(1,0) d=1: negatives 3,10 -> 3 ; 2,9 -> 2: 1-3+1<0, 1-2+1=0
    assert float(L.semi_hard_triplet_loss(y, e, margin=1.0)) == pytest.approx(5 / 4)


ADVERSARIAL = {
    "all one label": (np.zeros(6, int), np.random.default_rng(0).normal(size=(6, 3))),
    "all labels distinct": (np.arange(6), np.random.default_rng(1).normal(size=(6, 3))),
    "duplicated embeddings": (
        np.array([0, 0, 1, 1, 2, 2]),
        np.tile([[0.5, -1.0, 2.0]], (6, 1)),
    ),
    "all-zero embeddings": (np.array([0, 0, 1, 1, 2, 2]), np.zeros((6, 3))),
}


@pytest.mark.parametrize("name", sorted(ONLINE))
@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
@pytest.mark.parametrize("squared", [True, False])
def test_online_losses_finite_on_adversarial_batches(name, case, squared):
    y, e0 = ADVERSARIAL[case]
    e = tf.Variable(e0.astype(np.float32))
    ours, ref = ONLINE[name]
    with tf.GradientTape() as tape:
        loss = ours(y, e, 1.0, squared)
    grad = tape.gradient(loss, e)
    assert np.isfinite(float(loss))
    assert grad is None or np.all(np.isfinite(grad.numpy()))
    np.testing.assert_allclose(
        float(loss), ref(y, e0.astype(np.float32), 1.0, squared), atol=TOL
    )
    if case in ("all one label", "all labels distinct"):
        assert float(loss) == 0.0


@pytest.mark.parametrize(
    "cls",
    [
        L.BatchAllTripletLoss,
        L.BatchHardTripletLoss,
        L.SemiHardTripletLoss,
        L.SoftMarginTripletLoss,
    ],
)
def test_loss_classes_accept_keras_label_shapes(rng, cls):
    y, e = random_batch(rng)
    loss = cls()
    a = float(loss(y.astype(np.int32), e))
    b = float(loss(y.reshape(-1, 1).astype(np.float32), e))
    assert a == pytest.approx(b, abs=TOL)


def test_labels_and_embeddings_must_match():
    with pytest.raises(ValueError, match="same batch size"):
        L.batch_hard_triplet_loss(np.zeros(3), np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"\(batch,\) or \(batch, 1\)"):
        L.batch_hard_triplet_loss(np.zeros((4, 2)), np.zeros((4, 2), np.float32))


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (L.OfflineTripletLoss, {"margin": 0.2, "squared": False}),
        (L.BatchAllTripletLoss, {"margin": 0.3}),
        (L.BatchHardTripletLoss, {"margin": 0.4, "squared": True}),
        (L.SemiHardTripletLoss, {"margin": 0.5}),
        (L.SoftMarginTripletLoss, {"squared": True}),
    ],
)
def test_loss_config_round_trip(cls, kwargs):
    loss = cls(**kwargs)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is cls
    for k, v in kwargs.items():
        assert getattr(restored, k) == v


# ---------------------------------------------------------------- diagnostics
def test_diagnostics_match_numpy(rng):
    y, e = random_batch(rng)
    diag = {k: float(v) for k, v in L.triplet_diagnostics(y, e, margin=0.5).items()}
    d = np_dist(e, False)
    same = y[:, None] == y[None]
    pos = same & ~np.eye(len(y), dtype=bool)
    assert diag["mean_positive_distance"] == pytest.approx(d[pos].mean(), abs=TOL)
    assert diag["mean_negative_distance"] == pytest.approx(d[~same].mean(), abs=TOL)
    assert diag["mean_norm"] == pytest.approx(np.linalg.norm(e, axis=1).mean(), abs=TOL)
    assert diag["fraction_active"] == pytest.approx(
        np_batch_all(y, e, 0.5, False)[1], abs=TOL
    )
    assert diag["distance_gap"] == pytest.approx(
        d[~same].mean() - d[pos].mean(), abs=TOL
    )


def test_diagnostics_reveal_collapse():
    y = np.array([0, 0, 1, 1])
    diag = L.triplet_diagnostics(y, np.zeros((4, 3), np.float32))
    assert float(diag["mean_norm"]) == 0.0
    assert float(diag["distance_gap"]) == 0.0
    assert float(diag["fraction_active"]) == 1.0


# ---------------------------------------------------------------- bad input
CLASSES = {
    "batch_all": lambda y, e, m, s: L.BatchAllTripletLoss(margin=m, squared=s)(y, e),
    "batch_hard": lambda y, e, m, s: L.BatchHardTripletLoss(margin=m, squared=s)(y, e),
    "semi_hard": lambda y, e, m, s: L.SemiHardTripletLoss(margin=m, squared=s)(y, e),
    "soft_margin": lambda y, e, m, s: L.SoftMarginTripletLoss(squared=s)(y, e),
}
FORMS = {"function": {k: v[0] for k, v in ONLINE.items()}, "class": CLASSES}
LOSS_CLASSES = [
    L.BatchAllTripletLoss,
    L.BatchHardTripletLoss,
    L.SemiHardTripletLoss,
    L.SoftMarginTripletLoss,
]
# 1-D points: a pair near 0 and a pair near 5; classes alternate, so merging
# the two ids into one class changes every loss.
E4 = np.array([[0.0], [0.1], [5.0], [5.1]], np.float32)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("name", sorted(ONLINE))
@pytest.mark.parametrize(
    "ids,dtype",
    [
        ((2**32, 0), np.int64),
        ((2**33 + 1, 1), np.int64),
        ((2**24, 2**24 + 1), np.int64),
        ((2**31, -(2**31)), np.int64),
        ((2**63 + 1, 1), np.uint64),
    ],
    ids=["2**32,0", "2**33+1,1", "2**24,2**24+1", "2**31,-2**31", "uint64"],
)
def test_large_integer_labels_stay_distinct(form, name, ids, dtype):
    # Before: labels went through int32 (functions) or float32 (Keras classes),
    # so these pairs of ids became one class.
    a, b = ids
    big = np.array([a, b, a, b], dtype)
    small = np.array([0, 1, 0, 1])
    fn = FORMS[form][name]
    expected = float(fn(small, E4, 1.0, False))
    assert float(fn(small * 0, E4, 1.0, False)) != expected  # merging matters
    assert float(fn(big, E4, 1.0, False)) == expected
    assert float(fn(big.reshape(-1, 1), E4, 1.0, False)) == expected


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_float_labels_that_cannot_be_exact_ids_are_rejected_eagerly(dtype):
    limit = {"float32": 2**24, "float16": 2**11, "bfloat16": 2**8}[dtype]
    y = tf.constant([limit, limit + 1, limit, limit + 1], dtype)
    msg = f"{dtype} labels are exact class ids only below {limit}"
    with pytest.raises(ValueError, match=msg):
        L.batch_hard_triplet_loss(y, E4)
    with pytest.raises(ValueError, match=msg):
        L.BatchHardTripletLoss()(y, E4)
    ok = tf.constant([limit - 1, limit - 2, limit - 1, limit - 2], dtype)
    assert float(L.batch_hard_triplet_loss(ok, E4)) == pytest.approx(5.9, abs=1e-5)


def test_float32_labels_above_2_24_merge_inside_a_graph_as_documented():
    # The documented limit: float32 cannot hold 2**24 + 1, so the ids have
    # merged before the loss sees them; a traced graph cannot raise on it.
    y = tf.constant([2**24, 2**24 + 1, 2**24, 2**24 + 1], tf.float32)
    assert float(y[1]) == 2**24
    graph_loss = tf.function(lambda y, e: L.BatchHardTripletLoss()(y, e))
    assert float(graph_loss(y, E4)) == 0.0  # one class: no negative
    y_int = tf.constant([2**24, 2**24 + 1, 2**24, 2**24 + 1], tf.int64)
    assert float(graph_loss(y_int, E4)) == pytest.approx(5.9, abs=1e-5)
    assert "2**24" in L.BatchHardTripletLoss.__doc__


@pytest.mark.parametrize(
    "labels,match",
    [
        (np.array([0.0, 0.5, 0.0, 1.0]), "whole-number class ids, got 0.5"),
        (np.array([0.0, np.nan, 0.0, 1.0]), "finite class ids"),
        (np.array([0, 1, 0, 1], complex), "integer class ids, got dtype complex"),
        (np.array(["a", "b", "a", "b"]), "integer class ids, got dtype string"),
    ],
)
def test_labels_that_are_not_class_ids_are_rejected(labels, match):
    with pytest.raises((TypeError, ValueError), match=match):
        L.batch_all_triplet_loss(labels, E4)


def test_embeddings_and_margins_of_wrong_kind_are_rejected():
    y = np.array([0, 1, 0, 1])
    with pytest.raises(TypeError, match="embeddings must hold real numbers"):
        L.batch_hard_triplet_loss(y, E4.astype(complex))
    with pytest.raises(ValueError, match="finite and non-negative, got nan"):
        L.batch_hard_triplet_loss(y, E4, margin=float("nan"))
    with pytest.raises(ValueError, match="finite and non-negative, got inf"):
        L.BatchAllTripletLoss(margin=float("inf"))
    with pytest.raises(TypeError, match="num_parts must be an int"):
        L.split_triplet_output(np.zeros((2, 6), np.float32), num_parts=1.5)
    with pytest.raises(ValueError, match="num_parts must be >= 1"):
        L.split_triplet_output(np.zeros((2, 6), np.float32), num_parts=0)
    # NumPy scalars are fine margins
    a = L.batch_hard_triplet_loss(y, E4, margin=np.float32(0.5))
    assert float(a) == float(L.batch_hard_triplet_loss(y, E4, margin=0.5))


# ---------------------------------------------------------------- empty batch
def _empty_loss(form, name, graph):
    fn = FORMS[form][name]

    def f(y, e):
        return fn(y, e, 1.0, False)

    if graph:  # unknown batch size, as inside model.fit
        f = tf.function(
            f,
            input_signature=[
                tf.TensorSpec([None], tf.int64),
                tf.TensorSpec([None, 4], tf.float32),
            ],
        )
    return f


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("name", sorted(ONLINE))
def test_empty_batch_gives_zero_loss_and_zero_gradient(name, form, graph):
    # Before: batch-hard, semi-hard and soft-margin failed eagerly with
    # "Cannot compute the max of an empty tensor".
    f = _empty_loss(form, name, graph)
    y = tf.zeros([0], tf.int64)
    e = tf.Variable(tf.zeros([0, 4]), shape=tf.TensorShape([None, 4]))
    with tf.GradientTape() as tape:
        loss = f(y, e)
    grad = tape.gradient(loss, e)
    assert loss.dtype == tf.float32 and float(loss) == 0.0
    assert grad is None or (grad.shape == (0, 4) and not np.any(grad.numpy()))
    # the same traced function still works on a normal batch
    y2, e2 = random_batch(np.random.default_rng(0), n=8)
    expected = ONLINE[name][1](y2, e2, 1.0, False)
    assert float(f(tf.constant(y2, tf.int64), e2)) == pytest.approx(expected, abs=TOL)


def test_empty_batch_diagnostics_are_zero():
    diag = L.triplet_diagnostics(np.zeros(0, int), np.zeros((0, 3), np.float32))
    assert {k: float(v) for k, v in diag.items()} == dict.fromkeys(diag, 0.0)


# ---------------------------------------------------------------- half precision
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("name", sorted(ONLINE))
def test_half_precision_is_computed_in_float32(name, form, dtype, squared):
    # Before: distances and loss in bfloat16, off by ~4e-2 from float32.
    y, e32 = random_batch(np.random.default_rng(5), n=16, dim=8)
    e_half = tf.cast(e32, dtype)
    rounded = tf.cast(e_half, tf.float32)  # the same inputs, in float32
    fn = FORMS[form][name]
    half_var, f32_var = tf.Variable(e_half), tf.Variable(rounded)
    with tf.GradientTape(persistent=True) as tape:
        got = fn(y, half_var, 0.5, squared)
        ref = fn(y, f32_var, 0.5, squared)
    assert got.dtype == tf.float32
    assert abs(float(got) - float(ref)) <= 1e-6
    g_half, g_ref = tape.gradient(got, half_var), tape.gradient(ref, f32_var)
    assert g_half.dtype == dtype  # gradients flow back in the input dtype
    np.testing.assert_allclose(
        tf.cast(g_half, tf.float32), tf.cast(tf.cast(g_ref, dtype), tf.float32)
    )


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_half_precision_distances_and_offline_loss_are_float32(dtype):
    e = tf.cast(np.random.default_rng(2).normal(size=(6, 12)), dtype)
    d = L.pairwise_distances(e)
    assert d.dtype == tf.float32
    np.testing.assert_array_equal(d, L.pairwise_distances(tf.cast(e, tf.float32)))
    off = L.offline_triplet_loss(e, margin=0.5)
    assert off.dtype == tf.float32
    np.testing.assert_array_equal(
        off, L.offline_triplet_loss(tf.cast(e, tf.float32), margin=0.5)
    )


# ---------------------------------------------------------------- sample_weight
@pytest.mark.parametrize("cls", LOSS_CLASSES)
def test_online_loss_classes_reject_sample_weight(cls):
    # Before: weights [2, 0, 0, 0] silently gave half the batch's loss.
    y, e = np.array([0, 1, 0, 1]), E4
    loss = cls()
    with pytest.raises(ValueError, match="cannot weight single samples"):
        loss(y, e, sample_weight=np.array([2.0, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="cannot weight single samples"):
        loss(y, e, np.ones(4))
    masked = tf.constant(e)
    masked._keras_mask = tf.constant([True, True, False, True])
    with pytest.raises(ValueError, match="does not support masked predictions"):
        loss(y, masked)
    assert float(loss(y, e, sample_weight=None)) == float(loss(y, e))


@pytest.mark.parametrize("name", sorted(ONLINE))
@pytest.mark.parametrize("squared", [False, True])
def test_loss_classes_equal_the_functions_exactly(name, squared):
    y, e = random_batch(np.random.default_rng(7), n=12)
    a = CLASSES[name](y, e, 0.5, squared)
    b = ONLINE[name][0](y, e, 0.5, squared)
    assert a.dtype == tf.float32 and float(a) == float(b)


def test_offline_loss_class_keeps_per_triplet_sample_weight():
    e3 = np.array([[0, 0, 1, 0, 0, 2], [0, 0, 0, 3, 1, 0]], np.float32)  # 0 and 9
    loss = L.OfflineTripletLoss()
    assert float(loss(np.zeros(2), e3, sample_weight=np.array([0.0, 1.0]))) == 4.5
    assert float(loss(np.zeros(2), e3, sample_weight=np.array([1.0, 0.0]))) == 0.0


def _tiny_embedding_model(dim=3):
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(dim)])


def test_model_fit_with_an_online_loss(rng):
    keras.utils.set_random_seed(0)
    x = rng.normal(size=(48, 5)).astype(np.float32)
    y = np.arange(48) % 4
    model = _tiny_embedding_model()
    model.compile(optimizer="adam", loss=L.BatchAllTripletLoss(margin=0.5))
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2
    assert all(np.isfinite(history.history["loss"]))
    with pytest.raises(ValueError, match="cannot weight single samples"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, class_weight={0: 2.0})
    with pytest.raises(ValueError, match="cannot weight single samples"):
        model.fit(x, y, sample_weight=np.ones(48), batch_size=16, verbose=0)


def test_model_fit_keeps_large_integer_ids_apart(rng):
    # Inside model.fit (a traced graph) y_true arrives as int64 and is no
    # longer cast to float32, so ids 2**24 + i stay four classes.
    keras.utils.set_random_seed(0)
    x = rng.normal(size=(32, 5)).astype(np.float32)
    small = np.arange(32) % 4
    model = _tiny_embedding_model()
    model.compile(loss=L.BatchHardTripletLoss(margin=0.5))
    ref = model.evaluate(x, small, batch_size=16, verbose=0)
    big = model.evaluate(x, small.astype(np.int64) + 2**24, batch_size=16, verbose=0)
    merged = model.evaluate(x, np.full(32, 2**24), batch_size=16, verbose=0)
    assert big == ref != merged


# ---------------------------------------------------------------- conventions
def omoindrot_batch_hard(y, e, margin, squared):
    """omoindrot/tensorflow-triplet-loss (and TFA's TripletHardLoss): the mean
    over *all* anchors; hardest positive 0 without a positive, hardest
    negative = the anchor's largest distance without a negative."""
    d = np_dist(e, squared)
    vals = []
    for a in range(len(y)):
        pos = [d[a, p] for p in range(len(y)) if p != a and y[p] == y[a]]
        neg = [d[a, n] for n in range(len(y)) if y[n] != y[a]]
        hp = max(pos) if pos else 0.0
        hn = min(neg) if neg else d[a].max()
        vals.append(max(hp - hn + margin, 0.0))
    return np.mean(vals)


def test_batch_hard_leaves_out_anchors_without_a_positive():
    # 1-D points 0, 2, 2.5; labels 0, 0, 1; margin 1; anchor 2 has no positive.
    y, e = np.array([0, 0, 1]), np.array([[0.0], [2.0], [2.5]], np.float32)
    # anchors 0 and 1: max(2 - 2.5 + 1, 0) = 0.5, max(2 - 0.5 + 1, 0) = 2.5
    assert np_batch_hard(y, e, 1.0, False) == pytest.approx(1.5)
    assert float(L.batch_hard_triplet_loss(y, e, 1.0)) == pytest.approx(1.5)
    assert float(L.BatchHardTripletLoss()(y, e)) == pytest.approx(1.5)
    # omoindrot / TFA also count anchor 2: max(0 - 0.5 + 1, 0) = 0.5
    assert omoindrot_batch_hard(y, e, 1.0, False) == pytest.approx(3.5 / 3)
    # soft margin shares the convention; TFA's soft=True averages all three
    sp = lambda x: np.log1p(np.exp(x))  # noqa: E731
    assert float(L.soft_margin_triplet_loss(y, e)) == pytest.approx(
        (sp(-0.5) + sp(1.5)) / 2, abs=1e-6
    )
    assert (2 * sp(-0.5) + sp(1.5)) / 3 == pytest.approx(0.8832, abs=1e-4)
    # an anchor without a negative: left out here; omoindrot gives it the margin
    same = np.zeros(3, int)
    assert float(L.batch_hard_triplet_loss(same, e)) == 0.0
    assert omoindrot_batch_hard(same, e, 1.0, False) == pytest.approx(1.0)
    # with every anchor having both, the conventions agree
    y_pk, e_pk = (
        np.array([0, 0, 1, 1, 2, 2]),
        np.random.default_rng(3).normal(size=(6, 2)),
    )
    assert float(L.batch_hard_triplet_loss(y_pk, e_pk)) == pytest.approx(
        omoindrot_batch_hard(y_pk, e_pk, 1.0, False), abs=TOL
    )
