"""Retrieval metrics against hand-computed rankings and a plain loop reference."""

import numpy as np
import pytest

from tripletutils.metrics import (
    nearest_neighbours,
    retrieval_metrics,
    retrieval_per_query,
)


def loop_reference(q, ql, r, rl, same_set, ks):
    """Definitions written out query by query (Musgrave et al. 2020)."""
    p1, rp, mapr, pk, rk = [], [], [], {k: [] for k in ks}, {k: [] for k in ks}
    for i in range(len(q)):
        d = [
            (np.sum((q[i] - r[j]) ** 2), j)
            for j in range(len(r))
            if not (same_set and i == j)
        ]
        order = [j for _, j in sorted(d, key=lambda t: (t[0], t[1]))]
        rel = [rl[j] == ql[i] for j in order]
        big_r = sum(rel)
        if big_r == 0:
            continue
        p1.append(rel[0])
        rp.append(sum(rel[:big_r]) / big_r)
        ap = sum(sum(rel[: n + 1]) / (n + 1) for n in range(big_r) if rel[n]) / big_r
        mapr.append(ap)
        for k in ks:
            pk[k].append(sum(rel[:k]) / k)
            rk[k].append(any(rel[:k]))
    out = {
        "precision_at_1": np.mean(p1),
        "r_precision": np.mean(rp),
        "mean_average_precision_at_r": np.mean(mapr),
    }
    for k in ks:
        out[f"precision_at_{k}"] = np.mean(pk[k])
        out[f"recall_at_{k}"] = np.mean(rk[k])
    return out


def test_hand_made_ranking():
    # 1-D references: class 0 at 0, 1, 5; class 1 at 2, 3. Query of class 0 at 0.9.
    refs = np.array([[0.0], [1.0], [5.0], [2.0], [3.0]])
    labels = np.array([0, 0, 0, 1, 1])
    q, ql = np.array([[0.9]]), np.array([0])
    # ranking by distance: 1.0 (c0), 0.0 (c0), 2.0 (c1), 3.0 (c1), 5.0 (c0)
    np.testing.assert_array_equal(nearest_neighbours(q, refs, 5), [[1, 0, 3, 4, 2]])
    m = retrieval_metrics(q, ql, refs, labels, ks=(1, 3))
    assert m["precision_at_1"] == 1.0
    assert m["precision_at_3"] == pytest.approx(2 / 3)
    assert m["recall_at_3"] == 1.0
    assert m["r_precision"] == pytest.approx(2 / 3)  # R = 3, 2 hits in the top 3
    assert m["mean_average_precision_at_r"] == pytest.approx((1 / 1 + 2 / 2) / 3)


def test_ties_break_by_reference_order():
    refs = np.array([[1.0], [-1.0], [1.0]])
    labels = np.array([1, 0, 0])
    q = np.array([[0.0]])
    np.testing.assert_array_equal(nearest_neighbours(q, refs, 3), [[0, 1, 2]])
    assert (
        retrieval_metrics(q, np.array([0]), refs, labels, ks=(1,))["precision_at_1"]
        == 0.0
    )


def test_leave_one_out_and_singleton_class():
    e = np.array([[0.0], [0.1], [5.0], [5.2], [9.0]])
    y = np.array([0, 0, 1, 1, 2])  # class 2 has one member: no reference for it
    m = retrieval_metrics(e, y, ks=(1,))
    assert m["queries_scored"] == 4 and m["queries_skipped"] == 1
    assert m["precision_at_1"] == 1.0 and m["mean_average_precision_at_r"] == 1.0
    np.testing.assert_array_equal(
        nearest_neighbours(e, e, 1, same_set=True)[:, 0], [1, 0, 3, 2, 3]
    )


def test_k_larger_than_a_class():
    e = np.array([[0.0], [0.1], [5.0], [5.1], [5.2], [5.3]])
    y = np.array([0, 0, 1, 1, 1, 1])
    m = retrieval_metrics(e, y, ks=(4,))
    # class-0 queries have one positive: precision@4 = 1/4; class-1 queries have 3 of 4
    assert m["precision_at_4"] == pytest.approx((2 * 0.25 + 4 * 0.75) / 6)
    assert m["recall_at_4"] == 1.0


@pytest.mark.parametrize("chunk_size", [1, 7, 1024])
@pytest.mark.parametrize("same_set", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_loop_reference(same_set, seed, chunk_size):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(30, 3))
    ql = rng.integers(0, 4, 30)
    if same_set:
        r, rl = q, ql
        got = retrieval_metrics(q, ql, ks=(1, 2, 5), chunk_size=chunk_size)
    else:
        r, rl = rng.normal(size=(40, 3)), rng.integers(0, 4, 40)
        got = retrieval_metrics(q, ql, r, rl, ks=(1, 2, 5), chunk_size=chunk_size)
    ref = loop_reference(q, ql, r, rl, same_set, (1, 2, 5))
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_bad_inputs():
    e, y = np.zeros((4, 2)), np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="both references and reference_labels"):
        retrieval_metrics(e, y, references=e)
    with pytest.raises(ValueError, match="one label"):
        retrieval_metrics(e, y[:3])
    with pytest.raises(TypeError, match="integer classes"):
        retrieval_metrics(e, y.astype(float))
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbours(e, e, 4, same_set=True)
    with pytest.raises(ValueError, match="exceeds"):
        retrieval_metrics(e, y, ks=(10,))
    with pytest.raises(ValueError, match="no query"):
        retrieval_metrics(e, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="same width"):
        retrieval_metrics(e, y, np.zeros((4, 3)), y)


def test_partial_selection_matches_full_stable_sort():
    rng = np.random.default_rng(3)
    refs = rng.integers(0, 4, size=(400, 2)).astype(float)  # many exact ties
    q = rng.integers(0, 4, size=(50, 2)).astype(float)
    d = ((q[:, None, :] - refs[None]) ** 2).sum(-1)
    expected = np.argsort(d, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(
        nearest_neighbours(q, refs, 7, chunk_size=16), expected
    )


def test_vectorised_selection_without_ties_matches_full_sort():
    rng = np.random.default_rng(4)
    refs, q = rng.normal(size=(500, 3)), rng.normal(size=(60, 3))
    d = ((q[:, None, :] - refs[None]) ** 2).sum(-1)
    for k in (1, 5, 100):
        expected = np.argsort(d, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(
            nearest_neighbours(q, refs, k, chunk_size=25), expected
        )


# ---------------------------------------------------------------- bad input
def _refs_and_queries(n_ref=8, n_q=8, seed=0):
    rng = np.random.default_rng(seed)
    q, r = rng.normal(size=(n_q, 3)), rng.normal(size=(n_ref, 3))
    return q, np.arange(n_q) % 2, r, np.arange(n_ref) % 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_non_finite_reference_row_is_rejected(bad, dtype):
    # Before: argmin picked the NaN row for every query (P@1 from that row's class).
    q, ql, r, rl = _refs_and_queries()
    q, r = q.astype(dtype), r.astype(dtype)
    r[3, 1] = bad
    msg = r"references must be finite: 1 of 8 rows hold NaN or inf \(first at row 3\)"
    with pytest.raises(ValueError, match=msg):
        nearest_neighbours(q, r, 1)
    with pytest.raises(ValueError, match=msg):
        retrieval_metrics(q, ql, r, rl, ks=(1,))


@pytest.mark.parametrize("same_set", [True, False])
def test_non_finite_query_rows_are_rejected(same_set):
    # 40 points: before, a NumPy broadcast error from inside the ranking.
    rng = np.random.default_rng(1)
    e, y = rng.normal(size=(40, 3)), np.arange(40) % 4
    e[5], e[7, 0] = np.inf, np.nan
    msg = r"queries must be finite: 2 of 40 rows hold NaN or inf \(first at row 5\)"
    refs = (None, None) if same_set else (rng.normal(size=(40, 3)), y)
    with pytest.raises(ValueError, match=msg):
        retrieval_metrics(e, y, *refs, ks=(1, 5))
    with pytest.raises(ValueError, match=msg):
        nearest_neighbours(e, e if same_set else refs[0], 5, same_set=same_set)


def test_embeddings_too_large_to_square_are_rejected():
    q, ql, r, rl = _refs_and_queries()
    r = r.astype(np.float32)
    r[2] = 1e20  # finite, but |r|^2 overflows float32
    with pytest.raises(ValueError, match="references are too large for squared"):
        nearest_neighbours(q.astype(np.float32), r, 1)
    with pytest.raises(ValueError, match="1 of 8 rows have a squared norm"):
        retrieval_metrics(q.astype(np.float32), ql, r, rl, ks=(1,))


@pytest.mark.parametrize(
    "arr", [np.zeros((4, 2), complex), np.zeros((4, 2), object), np.zeros((4, 2), "U1")]
)
def test_non_numeric_embeddings_are_rejected(arr):
    y = np.array([0, 0, 1, 1])
    with pytest.raises(TypeError, match="queries must hold real numbers"):
        retrieval_metrics(arr, y, ks=(1,))
    with pytest.raises(TypeError, match="must hold real numbers"):
        nearest_neighbours(arr, arr, 1)


BAD_KS = [
    ((0,), ValueError, r"ks must hold ints >= 1, got 0 in ks=\(0,\)"),
    ((-2,), ValueError, r"ks must hold ints >= 1, got -2"),
    ((1, 0), ValueError, r"got 0 in ks=\(1, 0\)"),
    ((), ValueError, r"ks must hold at least one k"),
    ([], ValueError, r"ks must hold at least one k"),
    ((1.5,), TypeError, r"ks must hold ints, got float 1.5"),
    ((2.0,), TypeError, r"ks must hold ints, got float 2.0"),
    ((True,), TypeError, r"ks must hold ints, got bool True"),
    (("5",), TypeError, r"ks must hold ints, got str '5'"),
    (5, TypeError, r"ks must be a sequence of ints such as \(1, 5, 10\), got int"),
    ("15", TypeError, r"ks must be a sequence of ints"),
    (None, TypeError, r"ks must be a sequence of ints"),
    ((6,), ValueError, r"k=6 exceeds the 5 references available per query"),
]


@pytest.mark.parametrize(
    "ks,error,match", BAD_KS, ids=[f"ks={case[0]!r}" for case in BAD_KS]
)
def test_bad_ks_are_rejected(ks, error, match):
    e, y = np.arange(6.0)[:, None], np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(error, match=match):
        retrieval_metrics(e, y, ks=ks)


def test_good_ks_variants_give_the_same_numbers():
    e, y = np.arange(6.0)[:, None], np.array([0, 0, 1, 1, 2, 2])
    ref = retrieval_metrics(e, y, ks=(1, 3))
    assert retrieval_metrics(e, y, ks=[3, 1, 3]) == ref
    assert retrieval_metrics(e, y, ks=np.array([1, 3])) == ref
    assert retrieval_metrics(e, y, ks=(np.int64(1), np.int32(3))) == ref
    assert retrieval_metrics(e, y, ks=(5,))["precision_at_5"] == pytest.approx(0.2)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"k": 0}, ValueError, r"k must be an int in 1\.\.4, got 0"),
        ({"k": -1}, ValueError, r"k must be an int in 1\.\.4"),
        ({"k": 5}, ValueError, r"k must be an int in 1\.\.4, got 5"),
        ({"k": 1.0}, TypeError, r"k must be an int, got float 1.0"),
        ({"k": True}, TypeError, r"k must be an int, got bool"),
        ({"k": 1, "chunk_size": 0}, ValueError, "chunk_size must be a positive int"),
        ({"k": 1, "chunk_size": 2.0}, TypeError, "chunk_size must be an int"),
        ({"k": 1, "same_set": "yes"}, TypeError, "same_set must be a bool"),
    ],
)
def test_nearest_neighbours_rejects_bad_arguments(kwargs, error, match):
    e = np.arange(8.0).reshape(4, 2)
    with pytest.raises(error, match=match):
        nearest_neighbours(e, e, **kwargs)


@pytest.mark.parametrize("chunk_size", [0, -1])
def test_retrieval_metrics_rejects_bad_chunk_size(chunk_size):
    e, y = np.arange(6.0)[:, None], np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        retrieval_metrics(e, y, ks=(1,), chunk_size=chunk_size)


def test_same_set_needs_the_same_rows():
    e = np.arange(8.0).reshape(4, 2)
    nearest_neighbours(e, e.copy(), 1, same_set=True)  # equal values are fine
    with pytest.raises(ValueError, match="same_set=True needs references identical"):
        nearest_neighbours(e, e[::-1], 1, same_set=True)


def test_labels_of_mixed_integer_types_are_compared_exactly():
    # NumPy < 2 compares uint64 with int64 in float64, where 2**53 + 1 == 2**53.
    q = np.array([[0.0], [0.1], [5.0], [5.1]])
    r = np.array([[0.1], [0.0], [5.1], [5.0]])  # each query's nearest: other class
    ids = np.array([2**53 + 1, 2**53, 2**53 + 1, 2**53])
    for q_dtype, r_dtype in [(np.uint64, np.int64), (np.int64, np.uint64)]:
        m = retrieval_metrics(q, ids.astype(q_dtype), r, ids.astype(r_dtype), ks=(1,))
        assert m["precision_at_1"] == 0.0  # 1.0 if the two ids merged
        assert m["mean_average_precision_at_r"] == 0.25
    big = np.array([2**63 + 1, 2**63, 2**63 + 1, 2**63], np.uint64)
    assert retrieval_metrics(q, big, r, big, ks=(1,))["precision_at_1"] == 0.0
    with pytest.raises(ValueError, match="cannot share one integer type"):
        retrieval_metrics(q, big, r, np.array([-1, 5, 6, 6]), ks=(1,))


def loop_reference_per_query(q, ql, r, rl, same_set, ks):
    """Each query's scores written out, NaN for a query without a same-class ref."""
    rows = []
    for i in range(len(q)):
        d = [
            (np.sum((q[i] - r[j]) ** 2), j)
            for j in range(len(r))
            if not (same_set and i == j)
        ]
        rel = [rl[j] == ql[i] for _, j in sorted(d)]
        big_r = sum(rel)
        row = {"precision_at_1": float(rel[0]) if big_r else np.nan}
        row["r_precision"] = sum(rel[:big_r]) / big_r if big_r else np.nan
        ap = sum(sum(rel[: n + 1]) / (n + 1) for n in range(big_r) if rel[n])
        row["average_precision_at_r"] = ap / big_r if big_r else np.nan
        for k in ks:
            row[f"precision_at_{k}"] = sum(rel[:k]) / k if big_r else np.nan
            row[f"recall_at_{k}"] = float(any(rel[:k])) if big_r else np.nan
        rows.append(row)
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}


@pytest.mark.parametrize("same_set", [True, False])
@pytest.mark.parametrize("chunk_size", [1, 7, 1024])
def test_per_query_matches_loop_reference_and_the_means(same_set, chunk_size):
    rng = np.random.default_rng(3)
    q, ql = rng.normal(size=(30, 3)), rng.integers(0, 4, 30)
    ql[0] = 9  # a class of its own: no reference, NaN everywhere
    r, rl = (q, ql) if same_set else (rng.normal(size=(40, 3)), rng.integers(0, 4, 40))
    refs = () if same_set else (r, rl)
    got = retrieval_per_query(q, ql, *refs, ks=(1, 2, 5), chunk_size=chunk_size)
    expected = loop_reference_per_query(q, ql, r, rl, same_set, (1, 2, 5))
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert got[key].shape == (30,) and got[key].dtype == np.float64
        np.testing.assert_allclose(got[key], values, atol=1e-12, err_msg=key)
    assert np.isnan(got["precision_at_1"][0])
    means = retrieval_metrics(q, ql, *refs, ks=(1, 2, 5), chunk_size=chunk_size)
    for key in got:
        name = "mean_average_precision_at_r" if key.startswith("average") else key
        assert np.nanmean(got[key]) == pytest.approx(means[name], abs=1e-12), key
    assert means["queries_skipped"] == 1.0


def test_per_query_hand_made_ranking():
    # ranking of the query at 0.9: 1.0 (c0), 0.0 (c0), 2.0 (c1), 3.0 (c1), 5.0 (c0)
    refs = np.array([[0.0], [1.0], [5.0], [2.0], [3.0]])
    labels = np.array([0, 0, 0, 1, 1])
    got = retrieval_per_query(np.array([[0.9]]), np.array([0]), refs, labels, ks=(2,))
    assert got["precision_at_1"][0] == 1.0
    assert got["r_precision"][0] == pytest.approx(2 / 3)  # R = 3: two of the top 3
    assert got["average_precision_at_r"][0] == pytest.approx((1 + 1) / 3)
    assert got["precision_at_2"][0] == 1.0 and got["recall_at_2"][0] == 1.0


def test_per_query_rejects_what_retrieval_metrics_rejects():
    e = np.eye(4)
    y = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="give both"):
        retrieval_per_query(e, y, references=e)
    with pytest.raises(TypeError, match="integer classes"):
        retrieval_per_query(e, y.astype(float))
    with pytest.raises(ValueError, match="exceeds"):
        retrieval_per_query(e, y, ks=(10,))
    bad = e.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        retrieval_per_query(bad, y)
