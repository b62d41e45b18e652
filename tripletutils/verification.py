"""Verification: is this pair of images the same digit? ROC curve, AUC, threshold.

A verifier says "same class" when the Euclidean distance between the two
embeddings is at most a threshold ``t``. Over all thresholds this traces the
ROC curve:

* true positive rate ``TPR(t)`` = share of same-class pairs with ``d <= t``;
* false positive rate ``FPR(t)`` = share of different-class pairs with ``d <= t``.

The area under it (AUC) is the probability that a random same-class pair is
closer than a random different-class pair (ties count one half). A working
threshold is chosen on validation pairs (highest accuracy) and then applied,
unchanged, to test pairs.

Imports numpy and scikit-learn (its ROC curve and AUC) only, so it can be copied alone.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = [
    "sample_pairs",
    "pair_distances",
    "roc_curve",
    "roc_auc",
    "choose_threshold",
    "verification_accuracy",
]


def _labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(labels).__name__}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{name} must be a 1-D integer array, "
            f"got shape {labels.shape} dtype {labels.dtype}"
        )
    return labels


def _scores(distances: np.ndarray, same: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    for name, arr in (("distances", distances), ("same", same)):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if len(distances) != len(same):
        raise ValueError(
            f"distances and same differ in length: {len(distances)} and {len(same)}"
        )
    if same.dtype != bool:
        raise TypeError(f"same must be a bool array, got {same.dtype}")
    d = distances.astype(np.float64)
    if not np.all(np.isfinite(d)):
        raise ValueError("distances must be finite")
    if same.all() or not same.any():
        raise ValueError("need at least one same-class and one different-class pair")
    return d, same


def sample_pairs(
    labels: np.ndarray, n_pairs: int, seed: int = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """Draw balanced pairs: half same-class, half different-class.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer classes, shape ``(N,)``; at least two classes, and at least
        one class with two members.
    n_pairs : int
        Number of pairs (even, at least 2).
    seed : int, default 0

    Returns
    -------
    pairs : numpy.ndarray
        ``int64``, shape ``(n_pairs, 2)``: positions into ``labels``; the two
        positions of a pair always differ.
    same : numpy.ndarray
        ``bool``, shape ``(n_pairs,)``: the first half True, the second False.

    Raises
    ------
    TypeError, ValueError
        On bad labels or an odd or too small ``n_pairs``.
    """
    labels = _labels(labels)
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)):
        raise TypeError(f"n_pairs must be an int, got {type(n_pairs).__name__}")
    if n_pairs < 2 or n_pairs % 2:
        raise ValueError(f"n_pairs must be an even int >= 2, got {n_pairs}")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2 or counts.max() < 2:
        raise ValueError(
            "labels need two classes and a class with at least two members"
        )
    rng = np.random.default_rng(seed)
    half = n_pairs // 2
    by_class = {c: np.flatnonzero(labels == c) for c in classes}
    multi = classes[counts >= 2]
    # same-class pairs: a class (weighted by size), then two distinct members
    weights = counts[counts >= 2] / counts[counts >= 2].sum()
    chosen = rng.choice(multi, size=half, p=weights)
    same_pairs = np.empty((half, 2), np.int64)
    for i, c in enumerate(chosen):
        same_pairs[i] = rng.choice(by_class[c], size=2, replace=False)
    # different-class pairs: two positions, redrawn until the classes differ
    diff = np.empty((0, 2), np.int64)
    while len(diff) < half:
        cand = rng.integers(0, len(labels), size=(2 * half, 2))
        cand = cand[labels[cand[:, 0]] != labels[cand[:, 1]]]
        diff = np.concatenate([diff, cand])[:half]
    pairs = np.concatenate([same_pairs, diff]).astype(np.int64)
    same = np.zeros(n_pairs, bool)
    same[:half] = True
    return pairs, same


def pair_distances(embeddings: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Euclidean distance between the two embeddings of each pair.

    Parameters
    ----------
    embeddings : numpy.ndarray
        Shape ``(N, dim)``, float.
    pairs : numpy.ndarray
        Integer positions, shape ``(P, 2)``.

    Returns
    -------
    numpy.ndarray
        ``float64``, shape ``(P,)``.
    """
    if not isinstance(embeddings, np.ndarray) or not isinstance(pairs, np.ndarray):
        raise TypeError("embeddings and pairs must be numpy arrays")
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be (N, dim), got shape {embeddings.shape}")
    if (
        pairs.ndim != 2
        or pairs.shape[1] != 2
        or not np.issubdtype(pairs.dtype, np.integer)
    ):
        raise ValueError(
            f"pairs must be an integer array of shape (P, 2), "
            f"got {pairs.shape} {pairs.dtype}"
        )
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= len(embeddings)):
        raise ValueError(f"pair positions must lie in 0..{len(embeddings) - 1}")
    e = embeddings.astype(np.float64)
    return np.linalg.norm(e[pairs[:, 0]] - e[pairs[:, 1]], axis=1)


def roc_curve(
    distances: np.ndarray, same: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of the rule "same class when distance <= threshold".

    Parameters
    ----------
    distances : numpy.ndarray
        Pair distances, shape ``(P,)``, float.
    same : numpy.ndarray
        Ground truth, ``bool``, shape ``(P,)``; both values must occur.

    Returns
    -------
    fpr, tpr, thresholds : numpy.ndarray
        ``float64``, shape ``(T + 1,)`` for ``T`` distinct distances:
        thresholds ``-inf`` (nothing accepted: FPR = TPR = 0) then each
        distinct distance in increasing order (the last accepts everything:
        FPR = TPR = 1).
    """
    from sklearn.metrics import roc_curve as sklearn_roc_curve

    d, same = _scores(distances, same)
    # scikit-learn ranks by a score, larger meaning "same": the negated distance,
    # every distinct one kept; its thresholds +inf, -d_min, ... become -inf, d_min, ...
    fpr, tpr, thresholds = sklearn_roc_curve(same, -d, drop_intermediate=False)
    return (
        fpr.astype(np.float64),
        tpr.astype(np.float64),
        -thresholds.astype(np.float64),
    )


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve of :func:`roc_curve` (scikit-learn's ``roc_auc_score``).

    Equals the probability that a random same-class pair has a smaller
    distance than a random different-class pair, ties counting one half.

    Parameters
    ----------
    distances : numpy.ndarray
        Shape ``(P,)``, float.
    same : numpy.ndarray
        ``bool``, shape ``(P,)``.

    Returns
    -------
    float
        In [0, 1]; 1 when every same-class pair is closer than every
        different-class pair, 0.5 for a verifier that guesses.
    """
    from sklearn.metrics import roc_auc_score

    d, same = _scores(distances, same)
    return float(roc_auc_score(same, -d))  # scikit-learn's, ties counting one half


def verification_accuracy(
    distances: np.ndarray, same: np.ndarray, threshold: float
) -> float:
    """Share of pairs judged right by "same class when distance <= threshold".

    Parameters
    ----------
    distances : numpy.ndarray
        Shape ``(P,)``, float.
    same : numpy.ndarray
        ``bool``, shape ``(P,)``.
    threshold : float

    Returns
    -------
    float
        In [0, 1].
    """
    d, same = _scores(distances, same)
    if isinstance(threshold, bool) or not isinstance(
        threshold, (int, float, np.floating)
    ):
        raise TypeError(f"threshold must be a float, got {type(threshold).__name__}")
    return float(np.mean((d <= threshold) == same))


def choose_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the highest accuracy on these (validation) pairs.

    Candidates are midpoints between consecutive distinct distances (and
    one below the smallest and one above the largest); among equally
    accurate ones the smallest is returned.

    Parameters
    ----------
    distances : numpy.ndarray
        Shape ``(P,)``, float.
    same : numpy.ndarray
        ``bool``, shape ``(P,)``.

    Returns
    -------
    float
    """
    d, same = _scores(distances, same)
    fpr, tpr, thresholds = roc_curve(d, same)
    n_same, n_diff = same.sum(), (~same).sum()
    # accuracy when accepting everything up to thresholds[i]
    correct = tpr * n_same + (1.0 - fpr) * n_diff
    i = int(np.argmax(correct))
    u = thresholds[1:]  # distinct distances
    if i == 0:
        return float(u[0] - 1.0)
    if i == len(u):
        return float(u[-1] + 1.0)
    return float((u[i - 1] + u[i]) / 2.0)
