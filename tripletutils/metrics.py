"""Retrieval metrics for embeddings, with exact definitions.

Every metric here ranks a set of *references* by Euclidean distance to each
*query* embedding (exact search, by matrix products, in chunks) and scores the
ranking by class labels, following Musgrave, Belongie and Lim, "A Metric
Learning Reality Check" (ECCV 2020) and pytorch-metric-learning:

* ``precision_at_1``: share of queries whose nearest reference has the query's
  class. With the training set as references this is the 1-NN accuracy.
* ``precision_at_k``: mean share of same-class references among the ``k``
  nearest.
* ``recall_at_k``: share of queries with at least one same-class reference
  among the ``k`` nearest.
* ``r_precision``: with ``R`` = number of references of the query's class,
  the share of same-class references among the ``R`` nearest, averaged.
* ``map_at_r``: mean over queries of ``(1/R) * sum_{i<=R} P(i) * rel(i)``,
  where ``rel(i)`` is 1 when the ``i``-th nearest reference has the query's
  class and ``P(i)`` is the precision among the ``i`` nearest.

When queries and references are the same set (``same_set=True``), each query
is removed from its own references. Queries whose class has no reference
(``R`` = 0, e.g. the single member of a class) are left out of every metric
and counted in the result. Distance ties are broken by reference order
(stable sort), so results are deterministic.

Imports numpy only, so it can be copied alone.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ["nearest_neighbours", "retrieval_metrics"]


def _check(queries, query_labels, references, reference_labels):
    for name, arr, ndim in (
        ("queries", queries, 2),
        ("references", references, 2),
        ("query_labels", query_labels, 1),
        ("reference_labels", reference_labels, 1),
    ):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
        if arr.ndim != ndim:
            raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if queries.shape[1] != references.shape[1]:
        raise ValueError(
            f"queries and references must have the same width, got {queries.shape[1]} "
            f"and {references.shape[1]}"
        )
    if len(queries) != len(query_labels) or len(references) != len(reference_labels):
        raise ValueError(
            "each embedding needs one label: got "
            f"{len(queries)} queries / {len(query_labels)} labels, "
            f"{len(references)} references / {len(reference_labels)} labels"
        )
    if len(queries) == 0 or len(references) == 0:
        raise ValueError("queries and references must not be empty")


def nearest_neighbours(
    queries: np.ndarray,
    references: np.ndarray,
    k: int,
    same_set: bool = False,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Indices of the ``k`` nearest references of each query (exact search).

    Parameters
    ----------
    queries : numpy.ndarray
        Shape ``(Q, dim)``, float.
    references : numpy.ndarray
        Shape ``(N, dim)``, float.
    k : int
        Neighbours per query, ``1 <= k <= N`` (``N - 1`` when ``same_set``).
    same_set : bool, default False
        Queries are the references (same rows, same order): a query is never
        its own neighbour.
    chunk_size : int, default 1024
        Queries per matrix product (bounds memory at ``chunk_size * N`` floats).

    Returns
    -------
    numpy.ndarray
        ``int64`` of shape ``(Q, k)``, nearest first; ties in order of the
        references.

    Raises
    ------
    TypeError, ValueError
        On arrays of the wrong type or shape, or ``k`` out of range.
    """
    if not isinstance(queries, np.ndarray) or not isinstance(references, np.ndarray):
        raise TypeError("queries and references must be numpy arrays")
    if (
        queries.ndim != 2
        or references.ndim != 2
        or queries.shape[1] != references.shape[1]
    ):
        raise ValueError(
            f"queries and references must be (Q, dim) and (N, dim), "
            f"got {queries.shape} and {references.shape}"
        )
    if same_set and queries.shape != references.shape:
        raise ValueError("same_set=True needs queries and references of the same shape")
    available = len(references) - (1 if same_set else 0)
    if (
        isinstance(k, bool)
        or not isinstance(k, (int, np.integer))
        or not 1 <= k <= available
    ):
        raise ValueError(f"k must be an int in 1..{available}, got {k!r}")
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    out = np.empty((len(queries), k), dtype=np.int64)
    for start, block in _neighbour_blocks(queries, references, k, same_set, chunk_size):
        out[start : start + len(block)] = block
    return out


def _neighbour_blocks(queries, references, k, same_set, chunk_size):
    """Yield ``(start, indices)`` per chunk of queries: the k nearest, exact.

    Squared distances ``|q|^2 - 2 q.r + |r|^2`` in float32 for float32
    inputs (embeddings) and in float64 otherwise (so hand-made float64 or
    integer data keep exact ties). The distance matrix of a chunk is written
    into one buffer allocated once: on some machines page faults of fresh
    large arrays cost more than the arithmetic.
    """
    dtype = np.result_type(queries.dtype, references.dtype, np.float32)
    q = np.ascontiguousarray(queries, dtype=dtype)
    r = np.ascontiguousarray(references, dtype=dtype)
    r_sq = np.einsum("ij,ij->i", r, r)
    q_sq = np.einsum("ij,ij->i", q, q)
    buf = np.empty((min(chunk_size, len(q)), len(r)), dtype=dtype)
    scratch = np.empty_like(buf)
    for start in range(0, len(q), chunk_size):
        block = q[start : start + chunk_size]
        d = buf[: len(block)]
        np.matmul(block, r.T, out=d)
        d *= -2.0
        d += r_sq[None, :]
        d += q_sq[start : start + len(block), None]
        if same_set:
            rows = np.arange(len(block))
            d[rows, start + rows] = np.inf
        yield start, _k_smallest(d, k, scratch[: len(block)])


def _k_smallest(
    d: np.ndarray, k: int, scratch: Optional[np.ndarray] = None
) -> np.ndarray:
    """Column indices of the k smallest values per row; ties by column order.

    Exact and deterministic like a stable full sort: the k-th smallest value
    of each row (partition), every column at or below it in column order,
    then a stable sort of those by value. Rows where more than k values tie
    with the k-th smallest are done one by one the same way.
    """
    n, m = d.shape
    if k == 1:
        return np.argmin(d, axis=1)[:, None]  # argmin keeps the first of ties
    if k >= m // 4:
        return np.argsort(d, axis=1, kind="stable")[:, :k]
    if scratch is None:
        scratch = np.empty_like(d)
    scratch[...] = d
    scratch.partition(k - 1, axis=1)
    kth = scratch[:, k - 1 : k].copy()
    mask = d <= kth
    exact = np.count_nonzero(mask, axis=1) == k
    out = np.empty((n, k), dtype=np.int64)
    if exact.any():
        rows = np.flatnonzero(exact)
        sub = mask if len(rows) == n else mask[rows]
        cols = np.nonzero(sub)[1].reshape(-1, k)  # column order within each row
        vals = np.take_along_axis(d if len(rows) == n else d[rows], cols, axis=1)
        out[rows] = np.take_along_axis(
            cols, np.argsort(vals, axis=1, kind="stable"), axis=1
        )
    for i in np.flatnonzero(~exact):
        cand = np.flatnonzero(mask[i])
        out[i] = cand[np.argsort(d[i, cand], kind="stable")[:k]]
    return out


def retrieval_metrics(
    queries: np.ndarray,
    query_labels: np.ndarray,
    references: Optional[np.ndarray] = None,
    reference_labels: Optional[np.ndarray] = None,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = 1024,
) -> Dict[str, float]:
    """Precision@1, Precision@k, Recall@k, R-Precision and MAP@R in one pass.

    Parameters
    ----------
    queries : numpy.ndarray
        Query embeddings, shape ``(Q, dim)``.
    query_labels : numpy.ndarray
        Integer classes of the queries, shape ``(Q,)``.
    references, reference_labels : numpy.ndarray, optional
        Reference embeddings ``(N, dim)`` and classes ``(N,)``. When omitted,
        the queries are their own references, each query excluded from its
        own ranking (leave-one-out).
    ks : sequence of int, default (1, 5, 10)
        The ``k`` of Precision@k and Recall@k; each at most the number of
        references available to a query.
    chunk_size : int, default 1024

    Returns
    -------
    dict of str to float
        ``precision_at_1``, ``precision_at_{k}`` and ``recall_at_{k}`` for each
        ``k``, ``r_precision``, ``mean_average_precision_at_r`` (all in
        [0, 1]), and ``queries_scored`` and ``queries_skipped`` (queries with
        no reference of their class), as floats.

    Raises
    ------
    TypeError, ValueError
        On mismatched shapes, labels given for only one side, or a bad ``k``.
    """
    if (references is None) != (reference_labels is None):
        raise ValueError("give both references and reference_labels, or neither")
    same_set = references is None
    if same_set:
        references, reference_labels = queries, query_labels
    _check(queries, query_labels, references, reference_labels)
    for name, labels in (
        ("query_labels", query_labels),
        ("reference_labels", reference_labels),
    ):
        if not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"{name} must hold integer classes, got {labels.dtype}")
    ks = sorted({int(k) for k in ks})
    classes, counts = np.unique(reference_labels, return_counts=True)
    count_of = dict(zip(classes.tolist(), counts.tolist()))
    r = np.array([count_of.get(int(c), 0) for c in query_labels], dtype=np.int64)
    if same_set:
        r = r - 1
    scored = r > 0
    if not scored.any():
        raise ValueError("no query has a reference of its own class")
    depth = max(max(ks), int(r.max()))
    depth = min(depth, len(references) - (1 if same_set else 0))
    if max(ks) > depth:
        raise ValueError(
            f"k={max(ks)} exceeds the {depth} references available per query"
        )
    # One chunk of queries at a time: memory stays at chunk_size x depth
    # (depth is the largest class, 6,742 with MNIST's training set).
    ranks = np.arange(1, depth + 1)
    sums = {"first": 0.0, "rp": 0.0, "map": 0.0}
    sums.update({f"p{k}": 0.0 for k in ks})
    sums.update({f"r{k}": 0.0 for k in ks})
    for start, nn in _neighbour_blocks(
        queries, references, depth, same_set, chunk_size
    ):
        stop = start + len(nn)
        keep = scored[start:stop]
        rel = (
            reference_labels[nn[keep]] == query_labels[start:stop][keep, None]
        )  # (q, depth)
        r_s = r[start:stop][keep]
        within_r = ranks[None, :] <= r_s[:, None]
        hits = np.cumsum(rel, axis=1)
        sums["first"] += float(rel[:, 0].sum())
        sums["rp"] += float(np.sum(np.sum(rel & within_r, axis=1) / r_s))
        sums["map"] += float(
            np.sum(np.sum(hits / ranks[None, :] * (rel & within_r), axis=1) / r_s)
        )
        for k in ks:
            sums[f"p{k}"] += float(np.sum(hits[:, k - 1] / k))
            sums[f"r{k}"] += float(np.sum(hits[:, k - 1] > 0))
    n = float(scored.sum())
    result = {
        "precision_at_1": sums["first"] / n,
        "r_precision": sums["rp"] / n,
        "mean_average_precision_at_r": sums["map"] / n,
    }
    for k in ks:
        result[f"precision_at_{k}"] = sums[f"p{k}"] / n
        result[f"recall_at_{k}"] = sums[f"r{k}"] / n
    result["queries_scored"] = float(scored.sum())
    result["queries_skipped"] = float((~scored).sum())
    return result
