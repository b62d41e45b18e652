"""Verification metrics against hand-computed ROC curves and a pair-counting AUC."""

import numpy as np
import pytest

from tripletutils.verification import (
    choose_threshold,
    pair_distances,
    roc_auc,
    roc_curve,
    sample_pairs,
    verification_accuracy,
)


def test_hand_made_roc():
    # sorted distances: 0.1 (same), 0.2 (diff), 0.3 (same), 0.4 (diff)
    d = np.array([0.3, 0.1, 0.4, 0.2])
    same = np.array([True, True, False, False])
    fpr, tpr, thr = roc_curve(d, same)
    np.testing.assert_allclose(thr, [-np.inf, 0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    # same-class pairs closer than different-class ones:
    # (0.1<0.2, 0.1<0.4, 0.3<0.4, 0.3>0.2) = 3/4
    assert roc_auc(d, same) == pytest.approx(0.75)


def test_ties_count_one_half():
    d = np.array([1.0, 1.0, 2.0])
    same = np.array([True, False, False])
    fpr, tpr, thr = roc_curve(d, same)
    np.testing.assert_allclose(thr, [-np.inf, 1.0, 2.0])
    np.testing.assert_allclose(tpr, [0, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0.5, 1])
    # pairs (same, diff): tie with the 1.0 -> 1/2, win against 2.0 -> 1: (0.5 + 1) / 2
    assert roc_auc(d, same) == pytest.approx(0.75)


def test_perfect_and_inverted():
    d = np.array([0.1, 0.2, 0.8, 0.9])
    same = np.array([True, True, False, False])
    assert roc_auc(d, same) == 1.0
    assert roc_auc(d, ~same) == 0.0
    t = choose_threshold(d, same)
    assert t == pytest.approx(0.5)
    assert verification_accuracy(d, same, t) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_pair_counting(seed):
    rng = np.random.default_rng(seed)
    d = np.round(rng.random(60), 1)  # many ties
    same = rng.random(60) < 0.4
    pos, neg = d[same], d[~same]
    wins = (pos[:, None] < neg[None, :]).sum() + 0.5 * (
        pos[:, None] == neg[None, :]
    ).sum()
    assert roc_auc(d, same) == pytest.approx(wins / (len(pos) * len(neg)), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_threshold_is_the_best_by_brute_force(seed):
    rng = np.random.default_rng(seed)
    d = rng.random(40)
    same = rng.random(40) < 0.5
    t = choose_threshold(d, same)
    candidates = np.r_[d, d - 1e-9, -1.0, 2.0]
    best = max(np.mean((d <= c) == same) for c in candidates)
    assert verification_accuracy(d, same, t) == pytest.approx(best)


def test_sample_pairs():
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    pairs, same = sample_pairs(labels, 200, seed=0)
    assert pairs.shape == (200, 2) and pairs.dtype == np.int64
    assert same[:100].all() and not same[100:].any()
    assert np.all(pairs[:, 0] != pairs[:, 1])
    np.testing.assert_array_equal(labels[pairs[:, 0]] == labels[pairs[:, 1]], same)
    again = sample_pairs(labels, 200, seed=0)[0]
    np.testing.assert_array_equal(pairs, again)


def test_pair_distances():
    e = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(
        pair_distances(e, np.array([[0, 1], [1, 2], [2, 2]])), [5.0, np.sqrt(20.0), 0.0]
    )


def test_bad_inputs():
    d, same = np.array([0.1, 0.2]), np.array([True, False])
    with pytest.raises(ValueError, match="one same-class and one different-class"):
        roc_curve(d, np.array([True, True]))
    with pytest.raises(TypeError, match="bool"):
        roc_curve(d, np.array([1, 0]))
    with pytest.raises(ValueError, match="differ in length"):
        roc_auc(d, np.array([True, False, True]))
    with pytest.raises(ValueError, match="finite"):
        roc_auc(np.array([np.nan, 0.1]), same)
    with pytest.raises(TypeError, match="threshold"):
        verification_accuracy(d, same, "0.5")
    with pytest.raises(ValueError, match="even"):
        sample_pairs(np.array([0, 0, 1]), 3)
    with pytest.raises(ValueError, match="two classes"):
        sample_pairs(np.array([0, 0, 0]), 4)
    with pytest.raises(ValueError, match="pair positions"):
        pair_distances(np.zeros((2, 2)), np.array([[0, 2]]))
    with pytest.raises(ValueError, match=r"\(P, 2\)"):
        pair_distances(np.zeros((2, 2)), np.array([0, 1]))


def _roc_by_hand(d, same):
    """The package's former NumPy ROC curve: the reference scikit-learn must match."""
    order = np.argsort(d, kind="stable")
    d, s = d[order], same[order]
    tp, fp = np.cumsum(s), np.cumsum(~s)
    last = np.r_[d[1:] != d[:-1], True]  # last position of each distinct distance
    tpr = np.r_[0.0, tp[last] / s.sum()]
    fpr = np.r_[0.0, fp[last] / (~s).sum()]
    return fpr, tpr, np.r_[-np.inf, d[last]]


@pytest.mark.parametrize("seed", range(5))
def test_scikit_learn_gives_the_former_numpy_curve_and_area(seed):
    rng = np.random.default_rng(seed)
    d = np.round(rng.random(300), 2)  # many ties
    same = rng.random(300) < 0.4
    fpr, tpr, thresholds = roc_curve(d, same)
    ref_fpr, ref_tpr, ref_thresholds = _roc_by_hand(d, same)
    np.testing.assert_array_equal(thresholds, ref_thresholds)
    np.testing.assert_allclose(fpr, ref_fpr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(tpr, ref_tpr, rtol=0, atol=1e-15)
    trapezoids = float(np.sum(np.diff(ref_fpr) * (ref_tpr[1:] + ref_tpr[:-1]) / 2))
    assert abs(roc_auc(d, same) - trapezoids) < 1e-12
