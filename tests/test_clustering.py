"""NMI against a hand computation and scikit-learn; AMI and k-means on easy data."""

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from tripletutils.clustering import cluster_scores, normalized_mutual_information


def test_hand_computed_nmi():
    y = np.array([0, 0, 1, 1])
    c = np.array([0, 0, 0, 1])
    # joint counts (0,0)=2, (1,0)=1, (1,1)=1 out of 4
    mi = (
        0.5 * np.log(0.5 / (0.5 * 0.75))
        + 0.25 * np.log(0.25 / (0.5 * 0.75))
        + 0.25 * np.log(0.25 / (0.5 * 0.25))
    )
    h_y = np.log(2.0)
    h_c = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert normalized_mutual_information(y, c) == pytest.approx(
        mi / ((h_y + h_c) / 2), abs=1e-12
    )
    assert normalized_mutual_information(y, c) == pytest.approx(0.34372, abs=1e-5)


def test_renaming_and_extremes():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert normalized_mutual_information(
        y, np.array([5, 5, 3, 3, 9, 9])
    ) == pytest.approx(1.0)
    assert normalized_mutual_information(y, np.zeros(6, np.int64)) == 0.0
    assert (
        normalized_mutual_information(np.zeros(3, np.int64), np.zeros(3, np.int64))
        == 1.0
    )
    # independent: each class split evenly over both clusters
    assert normalized_mutual_information(
        np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    ) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y, c = rng.integers(0, 5, 200), rng.integers(0, 7, 200)
    assert normalized_mutual_information(y, c) == pytest.approx(
        normalized_mutual_info_score(y, c), abs=1e-12
    )


def test_cluster_scores_separated_and_random():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    centres = np.eye(4) * 10.0
    good = centres[labels] + rng.normal(scale=0.1, size=(200, 4))
    s = cluster_scores(good, labels, seed=0)
    assert (
        s["nmi"] == pytest.approx(1.0)
        and s["ami"] == pytest.approx(1.0)
        and s["n_clusters"] == 4
    )
    noise = rng.normal(size=(200, 4))
    r = cluster_scores(noise, labels, n_clusters=50, seed=0)
    # on clusters of pure noise NMI grows with the number of clusters, AMI stays near 0
    assert abs(r["ami"]) < 0.05 and r["nmi"] > 0.15


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        normalized_mutual_information(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="integer"):
        normalized_mutual_information(np.array([0.5, 1.0]), np.array([0, 1]))
    with pytest.raises(TypeError, match="numpy array"):
        normalized_mutual_information([0, 1], np.array([0, 1]))
    with pytest.raises(ValueError, match="n_clusters"):
        cluster_scores(np.zeros((3, 2)), np.array([0, 1, 1]), n_clusters=5)
    with pytest.raises(ValueError, match=r"\(N, dim\)"):
        cluster_scores(np.zeros((3,)), np.array([0, 1, 1]))


def _nmi_by_hand(y, c):
    """The package's former NumPy NMI: the reference scikit-learn must match."""

    def entropy(counts):
        p = counts[counts > 0] / counts.sum()
        return float(-np.sum(p * np.log(p)))

    _, yi = np.unique(y, return_inverse=True)
    _, ci = np.unique(c, return_inverse=True)
    joint = np.zeros((yi.max() + 1, ci.max() + 1))
    np.add.at(joint, (yi, ci), 1.0)
    h_y, h_c = entropy(joint.sum(axis=1)), entropy(joint.sum(axis=0))
    if h_y == 0.0 and h_c == 0.0:
        return 1.0
    p = joint / joint.sum()
    outer = np.outer(joint.sum(axis=1), joint.sum(axis=0)) / joint.sum() ** 2
    nz = p > 0
    return max(
        0.0, float(np.sum(p[nz] * np.log(p[nz] / outer[nz]))) / ((h_y + h_c) / 2)
    )


@pytest.mark.parametrize("seed", range(5))
def test_scikit_learn_gives_the_former_numpy_nmi(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(1, 80))
        y = rng.integers(0, int(rng.integers(1, 7)), n)
        c = rng.integers(0, int(rng.integers(1, 7)), n)
        assert abs(normalized_mutual_information(y, c) - _nmi_by_hand(y, c)) < 1e-12
