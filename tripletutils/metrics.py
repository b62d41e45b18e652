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

Bad input raises instead of giving a number: a NaN or inf row among the
queries or references (NumPy's argmin would rank it nearest to every query),
a ``k`` that is not an int in range, labels that are not integers.

:func:`retrieval_per_query` gives the same scores query by query (for a
breakdown by class, or a bootstrap over queries); :func:`retrieval_metrics`
is their mean over the queries scored.

Imports numpy only, so it can be copied alone.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ["nearest_neighbours", "retrieval_metrics", "retrieval_per_query"]


def _check_embeddings(name: str, arr: np.ndarray) -> None:
    """Raise unless ``arr`` holds real numbers and every row is finite.

    A NaN or inf row would otherwise win (argmin picks NaN) or break the
    search; integer and bool embeddings are allowed (searched in float64).
    """
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (float or int), got dtype {arr.dtype}"
        )
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr).all(axis=1)
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            raise ValueError(
                f"{name} must be finite: {n_bad} of {len(arr)} rows hold NaN or "
                f"inf (first at row {int(np.flatnonzero(bad)[0])})"
            )


def _check_int(name: str, value) -> int:
    """A Python or NumPy int (not a bool, not a float); TypeError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def _check_chunk_size(chunk_size) -> int:
    chunk_size = _check_int("chunk_size", chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size}")
    return chunk_size


def _check_ks(ks) -> list:
    """Sorted distinct ints >= 1 from a non-empty sequence."""
    if isinstance(ks, (int, np.integer, str, bytes)) or not hasattr(ks, "__iter__"):
        raise TypeError(
            f"ks must be a sequence of ints such as (1, 5, 10), got "
            f"{type(ks).__name__} {ks!r}"
        )
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks must hold at least one k, e.g. ks=(1,); got ks=()")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(
                f"ks must hold ints, got {type(k).__name__} {k!r} in ks={ks!r}"
            )
        if k < 1:
            raise ValueError(f"ks must hold ints >= 1, got {k} in ks={ks!r}")
    return sorted({int(k) for k in ks})


def _common_int_labels(query_labels: np.ndarray, reference_labels: np.ndarray):
    """Both label arrays in one integer dtype, so ``==`` is exact.

    NumPy before 2.0 compares ``uint64`` with a signed array in float64, which
    merges ids above 2**53 (e.g. 2**53 and 2**53 + 1).
    """
    dtype = np.promote_types(query_labels.dtype, reference_labels.dtype)
    if dtype.kind == "f":  # uint64 mixed with a signed type
        both = (query_labels, reference_labels)
        if all(a.size == 0 or a.max() <= np.iinfo(np.int64).max for a in both):
            dtype = np.dtype(np.int64)
        elif all(a.size == 0 or a.min() >= 0 for a in both):
            dtype = np.dtype(np.uint64)
        else:
            raise ValueError(
                "query_labels and reference_labels cannot share one integer type "
                "(uint64 ids above 2**63 mixed with negative ids): remap the "
                "classes to 0..C-1 first"
            )
    return query_labels.astype(dtype, copy=False), reference_labels.astype(
        dtype, copy=False
    )


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
    _check_embeddings("queries", queries)
    if references is not queries:
        _check_embeddings("references", references)


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
        Shape ``(Q, dim)``, float (or int); every row finite.
    references : numpy.ndarray
        Shape ``(N, dim)``, float (or int); every row finite.
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
    TypeError
        If an array is not a numpy array of real numbers, or ``k``,
        ``same_set`` or ``chunk_size`` has the wrong type.
    ValueError
        On a wrong shape, a row holding NaN or inf (the message names the
        argument and counts the rows), embeddings too large to square,
        ``k`` out of range, or ``same_set=True`` with references that are not
        the queries.
    """
    if not isinstance(queries, np.ndarray) or not isinstance(references, np.ndarray):
        raise TypeError(
            "queries and references must be numpy arrays, got "
            f"{type(queries).__name__} and {type(references).__name__}"
        )
    if (
        queries.ndim != 2
        or references.ndim != 2
        or queries.shape[1] != references.shape[1]
    ):
        raise ValueError(
            f"queries and references must be (Q, dim) and (N, dim), "
            f"got {queries.shape} and {references.shape}"
        )
    if not isinstance(same_set, (bool, np.bool_)):
        raise TypeError(f"same_set must be a bool, got {type(same_set).__name__}")
    _check_embeddings("queries", queries)
    if references is not queries:
        _check_embeddings("references", references)
    if same_set and queries.shape != references.shape:
        raise ValueError("same_set=True needs queries and references of the same shape")
    if same_set and references is not queries:
        if not np.array_equal(queries, references):
            raise ValueError(
                "same_set=True needs references identical to queries (same rows "
                "in the same order); pass same_set=False for two different sets"
            )
    available = len(references) - (1 if same_set else 0)
    k = _check_int("k", k)
    if not 1 <= k <= available:
        raise ValueError(f"k must be an int in 1..{available}, got {k!r}")
    chunk_size = _check_chunk_size(chunk_size)
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
    with np.errstate(over="ignore", invalid="ignore"):
        r_sq = np.einsum("ij,ij->i", r, r)
        q_sq = np.einsum("ij,ij->i", q, q)
    # |q|^2 + |r|^2 <= max / 2 keeps -2 q.r and the sums finite
    limit = np.finfo(dtype).max / 4
    for name, sq in (("queries", q_sq), ("references", r_sq)):
        too_big = ~(sq <= limit)  # also catches inf and NaN from overflow
        if too_big.any():
            raise ValueError(
                f"{name} are too large for squared distances in {dtype}: "
                f"{int(too_big.sum())} of {len(sq)} rows have a squared norm "
                f"above {limit:.3g}; scale the embeddings down"
            )
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
        Query embeddings, shape ``(Q, dim)``, float (or int); every row finite.
    query_labels : numpy.ndarray
        Integer classes of the queries, shape ``(Q,)``, any integer dtype
        (ids are compared exactly, also above 2**53).
    references, reference_labels : numpy.ndarray, optional
        Reference embeddings ``(N, dim)`` (every row finite) and integer
        classes ``(N,)``. When omitted, the queries are their own references,
        each query excluded from its own ranking (leave-one-out).
    ks : sequence of int, default (1, 5, 10)
        The ``k`` of Precision@k and Recall@k: a non-empty sequence of ints
        (not bools), each ``>= 1`` and at most the number of references
        available to a query (``N``, or ``Q - 1`` leave-one-out).
    chunk_size : int, default 1024
        Queries per matrix product, ``>= 1``.

    Returns
    -------
    dict of str to float
        ``precision_at_1``, ``precision_at_{k}`` and ``recall_at_{k}`` for each
        ``k``, ``r_precision``, ``mean_average_precision_at_r`` (all in
        [0, 1]), and ``queries_scored`` and ``queries_skipped`` (queries with
        no reference of their class), as floats.

    Raises
    ------
    TypeError
        If an argument is not a numpy array, embeddings are not real numbers,
        labels are not integers, ``ks`` is not a sequence of ints or
        ``chunk_size`` is not an int.
    ValueError
        On mismatched shapes, labels given for only one side, a row of
        ``queries`` or ``references`` holding NaN or inf (the message names
        the argument and counts the rows), embeddings too large to square, an
        empty ``ks``, a ``k`` below 1 or above the references available, or
        no query with a reference of its class.
    """
    scores = retrieval_per_query(
        queries, query_labels, references, reference_labels, ks, chunk_size
    )
    scored = ~np.isnan(scores["precision_at_1"])
    n = float(scored.sum())
    result = {}
    for name, values in scores.items():  # the mean of AP@R is MAP@R
        key = "mean_average_precision_at_r" if name.startswith("average") else name
        result[key] = float(np.sum(values[scored]) / n)
    result["queries_scored"] = n
    result["queries_skipped"] = float((~scored).sum())
    return result


def retrieval_per_query(
    queries: np.ndarray,
    query_labels: np.ndarray,
    references: Optional[np.ndarray] = None,
    reference_labels: Optional[np.ndarray] = None,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = 1024,
) -> Dict[str, np.ndarray]:
    """The scores of :func:`retrieval_metrics`, one per query.

    Parameters
    ----------
    queries, query_labels, references, reference_labels, ks, chunk_size
        As for :func:`retrieval_metrics` (the same checks, the same errors).

    Returns
    -------
    dict of str to numpy.ndarray
        ``float64`` arrays of shape ``(Q,)``: ``precision_at_1``,
        ``precision_at_{k}`` and ``recall_at_{k}`` (0 or 1) for each ``k``,
        ``r_precision`` and ``average_precision_at_r`` (the query's AP@R,
        whose mean is MAP@R). A query with no reference of its class has NaN
        in every array. The mean of an array over the non-NaN queries is the
        matching value of :func:`retrieval_metrics`.

    Raises
    ------
    TypeError, ValueError
        As :func:`retrieval_metrics`.
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
    query_labels, reference_labels = _common_int_labels(query_labels, reference_labels)
    ks = _check_ks(ks)
    chunk_size = _check_chunk_size(chunk_size)
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
    names = ["precision_at_1", "r_precision", "average_precision_at_r"]
    names += [f"{kind}_at_{k}" for k in ks for kind in ("precision", "recall")]
    out = {name: np.full(len(queries), np.nan) for name in names}
    for start, nn in _neighbour_blocks(
        queries, references, depth, same_set, chunk_size
    ):
        stop = start + len(nn)
        keep = scored[start:stop]
        rows = np.arange(start, stop)[keep]
        rel = (
            reference_labels[nn[keep]] == query_labels[start:stop][keep, None]
        )  # (q, depth)
        r_s = r[start:stop][keep]
        within_r = ranks[None, :] <= r_s[:, None]
        hits = np.cumsum(rel, axis=1)
        out["precision_at_1"][rows] = rel[:, 0]
        out["r_precision"][rows] = np.sum(rel & within_r, axis=1) / r_s
        out["average_precision_at_r"][rows] = (
            np.sum(hits / ranks[None, :] * (rel & within_r), axis=1) / r_s
        )
        for k in ks:
            out[f"precision_at_{k}"][rows] = hits[:, k - 1] / k
            out[f"recall_at_{k}"][rows] = hits[:, k - 1] > 0
    return out
