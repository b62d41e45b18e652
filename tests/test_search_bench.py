"""tripletutils.search_bench: its pieces, and the committed results it wrote."""

import json

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from tripletutils.fingerprint import code_fingerprint  # noqa: E402
from tripletutils.metrics import nearest_neighbours, retrieval_metrics  # noqa: E402
from tripletutils.search import EmbeddingIndex  # noqa: E402
from tripletutils.search_bench import (  # noqa: E402
    HNSW_EF_SEARCH,
    IVF_NPROBES,
    SEARCH_BENCHMARK,
    SEARCH_MODULES,
    measure_index,
    run_search_benchmark,
    shift_images,
    shifted_copies,
)


def test_shifted_copies_are_distinct_small_shifts_and_seeded():
    images = np.zeros((3, 28, 28), dtype="float32")
    shifts = shifted_copies(images, 16, seed=0)
    assert len(shifts) == len(set(shifts)) == 16
    assert (0, 0) not in shifts
    assert all(max(abs(dy), abs(dx)) <= 2 for dy, dx in shifts)
    assert shifts == shifted_copies(images, 16, seed=0)
    assert shifts != shifted_copies(images, 16, seed=1)
    assert len(shifted_copies(images, 24)) == 24  # every shift but none


def test_shifted_copies_reject_bad_input():
    images = np.zeros((3, 28, 28), dtype="float32")
    for copies in (0, 25):
        with pytest.raises(ValueError, match="copies must be in 1..24"):
            shifted_copies(images, copies)
    with pytest.raises(TypeError, match="copies must be an int"):
        shifted_copies(images, True)
    with pytest.raises(ValueError, match="numpy array of shape"):
        shifted_copies(images.tolist(), 4)


def test_shift_images_moves_ink_and_fills_blank():
    images = np.zeros((1, 5, 5), dtype="uint8")
    images[0, 0, 4] = 7  # ink in the top-right corner
    images[0, 2, 2] = 9
    moved = shift_images(images, 1, -2)
    assert moved[0, 3, 0] == 9 and moved[0, 1, 2] == 7
    assert moved.sum() == 16 and moved.dtype == images.dtype
    gone = shift_images(images, -1, 1)  # the corner pixel is pushed out, not wrapped
    assert gone.sum() == 9 and gone[0, 1, 3] == 9
    np.testing.assert_array_equal(shift_images(images, 0, 0), images)
    with pytest.raises(ValueError, match=r"\|dx\| must be below 5"):
        shift_images(images, 0, 5)
    with pytest.raises(TypeError, match="dy must be an int"):
        shift_images(images, 1.0, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"copies": 25}, "copies must be in 0..24"),
        ({"n_queries": 0}, "n_queries must be in 1..10000"),
        ({"n_queries": 10, "n_latency": 11}, "n_latency must be in 1..10"),
    ],
)
def test_the_benchmark_rejects_bad_sizes_before_training(kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_search_benchmark(**kwargs, mnist="/nonexistent/mnist.npz")


def _data():
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(300, 6)).astype("float32")
    queries = rng.normal(size=(40, 6)).astype("float32")
    return refs, rng.integers(0, 3, 300), queries, rng.integers(0, 3, 40)


def test_measure_index_scores_an_exact_index_against_exact_search():
    refs, labels, queries, query_labels = _data()
    exact = nearest_neighbours(queries, refs, k=1)[:, 0]
    index = EmbeddingIndex(refs, labels)
    m = measure_index(index, queries, query_labels, exact, n_latency=5)
    assert m["recall_at_1"] == 1.0
    p1 = retrieval_metrics(queries, query_labels, refs, labels, ks=(1,))
    assert m["precision_at_1"] == p1["precision_at_1"]
    assert 0 < m["latency_ms_p50"] <= m["latency_ms_p99"]
    assert m["queries_per_second"] > 0
    wrong = measure_index(index, queries, query_labels, (exact + 1) % 300, n_latency=1)
    assert wrong["recall_at_1"] == 0.0  # the recall can fail


def test_measure_index_rejects_bad_input():
    refs, labels, queries, query_labels = _data()
    index = EmbeddingIndex(refs, labels)
    exact = np.zeros(len(queries), dtype=np.int64)
    with pytest.raises(ValueError, match="one label and one exact neighbour"):
        measure_index(index, queries, query_labels[:-1], exact)
    with pytest.raises(ValueError, match="n_latency must be a positive int"):
        measure_index(index, queries, query_labels, exact, n_latency=0)


def test_the_committed_search_benchmark_is_current_and_complete():
    results = json.loads(SEARCH_BENCHMARK.read_text())
    assert results["code_fingerprint"] == code_fingerprint(SEARCH_MODULES), (
        "the search code changed: rerun make bench-search"
    )
    rows = results["rows"]
    assert {row["references"] for row in rows} == {"mnist_60k", "shifted_copies"}
    assert results["copies"] == 16
    for name, n in (("mnist_60k", 60_000), ("shifted_copies", 17 * 60_000)):
        mine = [row for row in rows if row["references"] == name]
        assert {row["n"] for row in mine} == {n}
        flat = [row for row in mine if row["kind"] == "flat"]
        assert len(flat) == 1 and flat[0]["recall_at_1"] == 1.0
        ivf = [row for row in mine if row["kind"] == "ivf"]
        assert [row["value"] for row in ivf] == list(IVF_NPROBES)
        recalls = [row["recall_at_1"] for row in ivf]
        assert recalls == sorted(recalls)  # more cells visited, never less recall
        hnsw = [row["value"] for row in mine if row["kind"] == "hnsw"]
        assert hnsw == list(HNSW_EF_SEARCH)
    assert results["queries"]["n"] == 1000
