"""Do the embeddings form one cluster per class? NMI and AMI of k-means clusters.

* Normalised mutual information, arithmetic-mean normalisation:
  ``NMI = I(Y; C) / ((H(Y) + H(C)) / 2)`` with ``Y`` the true classes and
  ``C`` the cluster ids, natural logarithms, probabilities from counts.
  1 for a perfect clustering (up to renaming), 0 when the two are independent.
* Adjusted mutual information (Vinh, Epps and Bailey 2010):
  ``AMI = (I - E[I]) / (mean(H(Y), H(C)) - E[I])``, where ``E[I]`` is the
  mutual information expected by chance for clusterings of the same sizes.
  About 0 for a random clustering, whatever the number of clusters (NMI is
  not: it grows with the number of clusters even for random ones).

Both scores and k-means come from scikit-learn (chapter 9 gives the formulas);
this module checks the input and fixes the conventions. Imports numpy and
scikit-learn only, so it can be copied alone.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

__all__ = ["normalized_mutual_information", "cluster_scores"]


def _check_labels(name: str, labels: np.ndarray) -> np.ndarray:
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(labels).__name__}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{name} must be a 1-D integer array, "
            f"got shape {labels.shape} dtype {labels.dtype}"
        )
    if len(labels) == 0:
        raise ValueError(f"{name} must not be empty")
    return labels


def normalized_mutual_information(
    labels_true: np.ndarray, labels_pred: np.ndarray
) -> float:
    """NMI between two labelings, arithmetic-mean normalisation.

    Parameters
    ----------
    labels_true, labels_pred : numpy.ndarray
        Integer ids, shape ``(N,)`` each. The ids are names only: renaming
        the clusters does not change the score.

    Returns
    -------
    float
        In [0, 1]: scikit-learn's ``normalized_mutual_info_score`` with the
        arithmetic mean. When both labelings are a single group the score is
        1; when only one is, it is 0 (no information either way).

    Raises
    ------
    TypeError, ValueError
        On non-integer or non-1-D arrays, or arrays of different lengths.
    """
    y = _check_labels("labels_true", labels_true)
    c = _check_labels("labels_pred", labels_pred)
    if len(y) != len(c):
        raise ValueError(f"labelings differ in length: {len(y)} and {len(c)}")
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(y, c, average_method="arithmetic"))


def cluster_scores(
    embeddings: np.ndarray,
    labels: np.ndarray,
    n_clusters: Optional[int] = None,
    seed: int = 0,
    n_init: int = 4,
) -> Dict[str, float]:
    """Cluster embeddings with k-means and score the clusters against classes.

    Parameters
    ----------
    embeddings : numpy.ndarray
        Shape ``(N, dim)``, float.
    labels : numpy.ndarray
        True classes, integer, shape ``(N,)``.
    n_clusters : int, optional
        Number of k-means clusters (default: the number of classes).
    seed : int, default 0
        Seed of k-means' initialisation.
    n_init : int, default 4
        k-means restarts (the best inertia is kept).

    Returns
    -------
    dict of str to float
        ``nmi`` (:func:`normalized_mutual_information`), ``ami``
        (scikit-learn's ``adjusted_mutual_info_score``) and ``n_clusters``.

    Raises
    ------
    TypeError, ValueError
        On mismatched shapes or a bad ``n_clusters``.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score

    labels = _check_labels("labels", labels)
    if not isinstance(embeddings, np.ndarray):
        raise TypeError(
            f"embeddings must be a numpy array, got {type(embeddings).__name__}"
        )
    if embeddings.ndim != 2 or len(embeddings) != len(labels):
        raise ValueError(
            f"embeddings must be (N, dim) with N = {len(labels)} labels, "
            f"got shape {embeddings.shape}"
        )
    k = len(np.unique(labels)) if n_clusters is None else n_clusters
    if (
        isinstance(k, bool)
        or not isinstance(k, (int, np.integer))
        or not 1 <= k <= len(labels)
    ):
        raise ValueError(
            f"n_clusters must be an int in 1..{len(labels)}, got {n_clusters!r}"
        )
    pred = KMeans(n_clusters=int(k), n_init=n_init, random_state=seed).fit_predict(
        embeddings.astype(np.float64)
    )
    return {
        "nmi": normalized_mutual_information(labels, pred.astype(np.int64)),
        "ami": float(adjusted_mutual_info_score(labels, pred)),
        "n_clusters": float(k),
    }
