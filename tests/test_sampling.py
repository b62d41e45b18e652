import numpy as np
import pytest

from tripletutils import sampling as S


def labels_small():
    # class 0: 4 examples, class 1: 3, class 2: 5  (12 in all, interleaved)
    return np.array([0, 1, 2, 0, 2, 1, 0, 2, 2, 1, 0, 2])


def np_seed_reference(labels, r_draws):
    """Literal transcription of the seed's loops, with given offsets r."""
    classes = sorted(set(labels.tolist()))
    idx = [np.where(labels == c)[0] for c in classes]
    n = min(len(i) for i in idx) - 1
    rows, k = [], 0
    for d in range(len(classes)):
        for i in range(n):
            dn = (d + r_draws[k]) % len(classes)
            k += 1
            rows.append([idx[d][i], idx[d][i + 1], idx[dn][i]])
    return np.array(rows)


def test_seed_offline_matches_seed_loops():
    y = labels_small()
    got = S.seed_offline_triplets(y, seed=3)
    assert got.shape == (3 * 2, 3)
    # recover the drawn offsets from the negatives' classes, then replay the loops
    anchors_cls = y[got[:, 0]]
    r = (y[got[:, 2]] - anchors_cls) % 3
    assert set(r.tolist()) <= {1, 2}
    np.testing.assert_array_equal(got, np_seed_reference(y, r.tolist()))


def test_seed_offline_hand_made():
    y = np.array([0, 1, 0, 1, 0, 1])  # each class: 3 examples -> n = 2
    got = S.seed_offline_triplets(y, seed=0)
    # with two classes the negative class is always the other one
    np.testing.assert_array_equal(got, [[0, 2, 1], [2, 4, 3], [1, 3, 0], [3, 5, 2]])


def test_seed_offline_is_seeded():
    y = np.random.default_rng(0).integers(0, 10, 500)
    a, b = S.seed_offline_triplets(y, seed=1), S.seed_offline_triplets(y, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, S.seed_offline_triplets(y, seed=2))


def test_seed_offline_full_mnist_count(mnist_path):
    y = np.load(mnist_path)["y_train"].astype(np.int64)
    t = S.seed_offline_triplets(y)
    assert t.shape == (54200, 3)
    assert (y[t[:, 0]] == y[t[:, 1]]).all() and (y[t[:, 0]] != y[t[:, 2]]).all()
    assert len(np.unique(t)) < 60000  # some images are never used


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_triplets_are_valid(seed):
    y = np.random.default_rng(seed).integers(0, 4, 300)
    t = S.random_triplets(y, seed=seed)
    assert t.shape == (300, 3) and t.dtype == np.int64
    assert sorted(t[:, 0].tolist()) == list(
        range(300)
    )  # every example is an anchor once
    assert (t[:, 0] != t[:, 1]).all()
    assert (y[t[:, 0]] == y[t[:, 1]]).all()
    assert (y[t[:, 0]] != y[t[:, 2]]).all()


def test_random_triplets_change_with_epoch_and_repeat_with_seed():
    y = labels_small()
    a = S.random_triplets(y, seed=5, epoch=0)
    np.testing.assert_array_equal(a, S.random_triplets(y, seed=5, epoch=0))
    assert not np.array_equal(a, S.random_triplets(y, seed=5, epoch=1))


def test_random_triplets_are_roughly_uniform():
    y = np.array([0] * 4 + [1] * 4)
    t = np.concatenate([S.random_triplets(y, seed=0, epoch=e) for e in range(300)])
    # positives of anchor 0 are 1, 2, 3 equally often; negatives 4..7 equally often
    pos = np.bincount(t[t[:, 0] == 0, 1], minlength=8)[1:4]
    neg = np.bincount(t[t[:, 0] == 0, 2], minlength=8)[4:]
    assert pos.min() > 70 and neg.min() > 50


def test_pk_batches():
    y = np.random.default_rng(0).integers(0, 6, 400)
    b = S.pk_batch_indices(y, p=4, k=3, num_batches=20, seed=0)
    assert b.shape == (20, 12)
    for row in b:
        assert len(set(row.tolist())) == 12  # distinct examples
        groups = y[row].reshape(4, 3)
        assert (groups == groups[:, :1]).all()  # K of each class, grouped
        assert len(set(groups[:, 0].tolist())) == 4  # P distinct classes
    np.testing.assert_array_equal(b, S.pk_batch_indices(y, 4, 3, 20, seed=0))


def test_pk_dataset_matches_index_array():
    y = np.random.default_rng(1).integers(0, 5, 200)
    x = np.arange(200, dtype=np.float32).reshape(200, 1)
    idx = S.pk_batch_indices(y, 3, 4, 3, seed=7)
    ds = S.pk_dataset(x, y, 3, 4, seed=7)
    for row, (xb, yb) in zip(idx, ds.take(3)):
        np.testing.assert_array_equal(xb.numpy()[:, 0].astype(int), row)
        np.testing.assert_array_equal(yb.numpy(), y[row])


def test_triplet_dataset_batches():
    x = np.arange(12, dtype=np.uint8).reshape(12, 1, 1)
    t = S.seed_offline_triplets(labels_small())
    batches = list(S.triplet_dataset(x, t, batch_size=4, shuffle=False))
    assert [len(b[1]) for b in batches] == [4, 2]
    first = batches[0][0]
    assert set(first) == {"anchor", "positive", "negative"}
    assert first["anchor"].dtype.name == "float32"
    np.testing.assert_array_equal(first["negative"].numpy()[:, 0, 0], t[:4, 2])
    shuffled = np.concatenate(
        [b[0]["anchor"].numpy()[:, 0, 0] for b in S.triplet_dataset(x, t, 4, seed=0)]
    )
    assert sorted(shuffled.tolist()) == sorted(t[:, 0].tolist())


def test_random_triplet_dataset_matches_index_array():
    y = labels_small()
    x = np.arange(12, dtype=np.float32).reshape(12, 1)
    ds, steps = S.random_triplet_dataset(x, y, batch_size=5, seed=2)
    assert steps == 2
    got = [b[0] for b in ds.take(4)]
    for epoch in range(2):
        expected = S.random_triplets(y, seed=2, epoch=epoch)[: steps * 5]
        fed = np.concatenate(
            [got[2 * epoch + s]["anchor"].numpy()[:, 0] for s in range(2)]
        )
        np.testing.assert_array_equal(fed.astype(int), expected[:, 0])


def test_split_indices():
    y = np.repeat(np.arange(3), 20)
    train, held = S.split_indices(y, 0.25, seed=0)
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == 60
    assert np.bincount(y[held]).tolist() == [5, 5, 5]


BAD = [
    (
        "float labels",
        lambda: S.seed_offline_triplets(np.zeros(4, np.float32)),
        TypeError,
        "integer dtype",
    ),
    ("list labels", lambda: S.random_triplets([0, 1, 0, 1]), TypeError, "numpy array"),
    (
        "2-D labels",
        lambda: S.random_triplets(np.zeros((4, 2), int)),
        ValueError,
        r"shape \(N,\)",
    ),
    (
        "one class",
        lambda: S.seed_offline_triplets(np.zeros(5, int)),
        ValueError,
        "at least two classes",
    ),
    (
        "singleton class",
        lambda: S.random_triplets(np.array([0, 0, 1])),
        ValueError,
        r"class\(es\) \[1\]",
    ),
    (
        "k too large",
        lambda: S.pk_batch_indices(labels_small(), 2, 4, 1),
        ValueError,
        "smallest class has only 3",
    ),
    (
        "p too large",
        lambda: S.pk_batch_indices(labels_small(), 4, 2, 1),
        ValueError,
        "only 3",
    ),
    (
        "k below 2",
        lambda: S.pk_batch_indices(labels_small(), 2, 1, 1),
        ValueError,
        "at least 2",
    ),
    (
        "length mismatch",
        lambda: S.random_triplet_dataset(np.zeros((5, 2)), labels_small()),
        ValueError,
        "same length",
    ),
    (
        "pk length mismatch",
        lambda: S.pk_dataset(np.zeros((5, 2)), labels_small(), 2, 2),
        ValueError,
        "same length",
    ),
    (
        "bad triplets shape",
        lambda: S.triplet_dataset(np.zeros((5, 2)), np.zeros((3, 2), int)),
        ValueError,
        r"\(T, 3\)",
    ),
    (
        "triplet out of range",
        lambda: S.triplet_dataset(np.zeros((5, 2)), np.full((3, 3), 9)),
        ValueError,
        "0..4",
    ),
    (
        "seed not int",
        lambda: S.random_triplets(labels_small(), seed=1.5),
        TypeError,
        "seed must be an int",
    ),
    (
        "fraction out of range",
        lambda: S.split_indices(labels_small(), 1.5),
        ValueError,
        "between 0 and 1",
    ),
]


@pytest.mark.parametrize("name,call,exc,match", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs(name, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_pipelines_run_without_the_autotuner():
    """The autotuner's thread made model.fit return seconds after its last epoch."""
    y = labels_small()
    x = np.zeros((12, 2), np.float32)
    pipelines = [
        S.triplet_dataset(x, S.seed_offline_triplets(y), 4),
        S.random_triplet_dataset(x, y, 4)[0],
        S.pk_dataset(x, y, 2, 2),
    ]
    for ds in pipelines:
        assert ds.options().autotune.enabled is False
        assert ds.options().deterministic is True


def test_class_disjoint_folds_hold_out_each_group_once():
    from tripletutils.sampling import class_disjoint_folds

    folds = class_disjoint_folds(range(6), fold_size=2)
    assert folds == [
        ((2, 3, 4, 5), (0, 1)),
        ((0, 1, 4, 5), (2, 3)),
        ((0, 1, 2, 3), (4, 5)),
    ]
    for train, held in folds:
        assert not set(train) & set(held) and set(train) | set(held) == set(range(6))
    assert class_disjoint_folds([7, 3, 9, 1], 2)[0] == ((9, 1), (7, 3))


@pytest.mark.parametrize(
    "classes, size, error, match",
    [
        ([0, 1, 2, 3], 1, ValueError, "at least 2"),
        ([0, 1, 2, 3, 4], 2, ValueError, "at least two folds"),
        ([0, 1], 2, ValueError, "at least two folds"),
        ([0, 0, 1, 1], 2, ValueError, "distinct"),
        ([0, 1, 2.0, 3], 2, TypeError, "ints"),
        ([0, 1, 2, 3], "2", TypeError, "fold_size"),
    ],
)
def test_class_disjoint_folds_reject_bad_input(classes, size, error, match):
    from tripletutils.sampling import class_disjoint_folds

    with pytest.raises(error, match=match):
        class_disjoint_folds(classes, size)


def test_check_classes_names_what_is_not_allowed():
    from tripletutils.sampling import check_classes

    check_classes(np.array([0, 1, 1]), (0, 1), "fold 0")
    with pytest.raises(
        ValueError,
        match=r"fold 0 may only see classes \[0, 1\], got 2 "
        r"images of \[6, 9\]",
    ):
        check_classes(np.array([0, 6, 1, 9]), (0, 1), "fold 0")
    with pytest.raises(TypeError, match="integer class ids"):
        check_classes(np.array([0.0, 1.0]), (0, 1), "fold 0")
