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
