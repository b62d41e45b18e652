"""tripletutils.search: exact search equals nearest_neighbours, approximate kinds
approach it, save/load round-trips in a fresh process, bad input raises."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from tripletutils.metrics import nearest_neighbours, retrieval_metrics  # noqa: E402
from tripletutils.search import KINDS, EmbeddingIndex, SearchResult  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _clusters(n, dim=8, classes=5, seed=0):
    """Gaussian clusters, one per class: labels and float32 embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(classes, dim))
    y = rng.integers(0, classes, size=n)
    return (centres[y] + rng.normal(size=(n, dim))).astype("float32"), y


@pytest.fixture(scope="module")
def data():
    refs, y_refs = _clusters(400, seed=0)
    queries, y_queries = _clusters(60, seed=1)
    return refs, y_refs, queries, y_queries


def test_flat_search_equals_nearest_neighbours(data):
    refs, y_refs, queries, _ = data
    result = EmbeddingIndex(refs, y_refs).search(queries, k=7)
    assert isinstance(result, SearchResult)
    expected = nearest_neighbours(queries, refs, k=7)
    np.testing.assert_array_equal(result.indices, expected)
    np.testing.assert_array_equal(result.labels, y_refs[expected])
    exact = np.linalg.norm(queries[:, None, :] - refs[expected], axis=-1)
    np.testing.assert_allclose(result.distances, exact, rtol=1e-5, atol=1e-5)
    assert result.distances.dtype == np.float32 and result.indices.dtype == np.int64
    assert np.all(np.diff(result.distances, axis=1) >= 0)  # nearest first


def test_precision_at_1_through_the_index_equals_retrieval_metrics(data):
    refs, y_refs, queries, y_queries = data
    hits = EmbeddingIndex(refs, y_refs).search(queries).labels[:, 0] == y_queries
    expected = retrieval_metrics(queries, y_queries, refs, y_refs, ks=(1,))
    assert hits.mean() == expected["precision_at_1"]


def test_ivf_visiting_every_cell_and_a_wide_hnsw_are_exact(data):
    refs, y_refs, queries, _ = data
    expected = nearest_neighbours(queries, refs, k=5)
    ivf = EmbeddingIndex(refs, y_refs, kind="ivf", nlist=16, nprobe=16)
    np.testing.assert_array_equal(ivf.search(queries, k=5).indices, expected)
    hnsw = EmbeddingIndex(refs, y_refs, kind="hnsw", ef_search=400)
    np.testing.assert_array_equal(hnsw.search(queries, k=5).indices, expected)


def test_fewer_cells_visited_can_only_lose_recall(data):
    refs, y_refs, queries, _ = data
    exact = nearest_neighbours(queries, refs, k=1)[:, 0]
    ivf = EmbeddingIndex(refs, y_refs, kind="ivf", nlist=40, nprobe=1)
    recall = {}
    for nprobe in (1, 4, 40):
        ivf.nprobe = nprobe
        recall[nprobe] = np.mean(ivf.search(queries).indices[:, 0] == exact)
    assert recall[1] <= recall[4] <= recall[40] == 1.0
    assert recall[1] < 1.0  # one cell of forty misses some true neighbours


def test_builds_are_deterministic(data):
    refs, y_refs, queries, _ = data
    for kind in ("ivf", "hnsw"):
        options = (
            {"nlist": 20, "nprobe": 2}
            if kind == "ivf"
            else {"ef_search": 8, "hnsw_m": 4}
        )
        a = EmbeddingIndex(refs, y_refs, kind=kind, **options)
        b = EmbeddingIndex(refs, y_refs, kind=kind, **options)
        np.testing.assert_array_equal(
            a.search(queries, k=10).indices, b.search(queries, k=10).indices
        )


def test_add_appends_after_the_references_held(data):
    refs, y_refs, _, _ = data
    index = EmbeddingIndex(refs[:300], y_refs[:300])
    index.add(refs[300:], y_refs[300:])
    assert len(index) == 400
    np.testing.assert_array_equal(index.labels, y_refs)
    found = index.search(refs[350:352])
    np.testing.assert_array_equal(found.indices[:, 0], [350, 351])
    np.testing.assert_array_equal(found.distances[:, 0], [0.0, 0.0])


def test_memory_per_vector_and_repr(data):
    refs, y_refs, _, _ = data
    flat = EmbeddingIndex(refs, y_refs)
    raw = refs.nbytes
    assert raw <= flat.memory_bytes() < raw + 4096
    hnsw = EmbeddingIndex(refs, y_refs, kind="hnsw", hnsw_m=8)
    assert hnsw.memory_bytes() > flat.memory_bytes()  # the graph's links on top
    assert (
        repr(hnsw)
        == "EmbeddingIndex('hnsw', 400 x 8, hnsw_m=8, ef_construction=40, ef_search=64)"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_in_a_fresh_process(data, tmp_path, kind):
    refs, y_refs, queries, _ = data
    options = {"flat": {}, "ivf": {"nlist": 16, "nprobe": 3}, "hnsw": {"ef_search": 10}}
    index = EmbeddingIndex(refs, y_refs, kind=kind, **options[kind])
    path = index.save(tmp_path / "index.npz")
    assert sorted(os.listdir(tmp_path)) == ["index.npz"]  # no temporary file left
    np.save(tmp_path / "queries.npy", queries)
    code = (
        "import json, sys, numpy as np\n"
        "from tripletutils.search import EmbeddingIndex\n"
        "index = EmbeddingIndex.load(sys.argv[1])\n"
        "result = index.search(np.load(sys.argv[2]), k=4)\n"
        "print(json.dumps({'repr': repr(index), 'indices': result.indices.tolist(),\n"
        "                  'labels': result.labels.tolist()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(tmp_path / "queries.npy")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    here = index.search(queries, k=4)
    assert loaded["repr"] == repr(index)
    np.testing.assert_array_equal(loaded["indices"], here.indices)
    np.testing.assert_array_equal(loaded["labels"], here.labels)


def test_bad_embeddings_labels_and_kinds_raise(data):
    refs, y_refs, _, _ = data
    nan = refs.copy()
    nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf in 1 of 400 rows"):
        EmbeddingIndex(nan, y_refs)
    with pytest.raises(ValueError, match="at least one embedding"):
        EmbeddingIndex(refs[:0], y_refs[:0])
    with pytest.raises(ValueError, match="shape"):
        EmbeddingIndex(refs[0], y_refs[:1])
    with pytest.raises(TypeError, match="numpy array"):
        EmbeddingIndex(refs.tolist(), y_refs)
    with pytest.raises(TypeError, match="real numbers"):
        EmbeddingIndex(refs > 0, y_refs)
    with pytest.raises(TypeError, match="integers"):
        EmbeddingIndex(refs, y_refs.astype(float))
    with pytest.raises(ValueError, match="one label per embedding"):
        EmbeddingIndex(refs, y_refs[:-1])
    with pytest.raises(ValueError, match="kind must be one of"):
        EmbeddingIndex(refs, y_refs, kind="lsh")
    with pytest.raises(ValueError, match="needs at least 500"):
        EmbeddingIndex(refs, y_refs, kind="ivf", nlist=500)
    with pytest.raises(ValueError, match="nprobe must be at most nlist=16"):
        EmbeddingIndex(refs, y_refs, kind="ivf", nlist=16, nprobe=17)
    with pytest.raises(TypeError, match="ef_search must be an int"):
        EmbeddingIndex(refs, y_refs, kind="hnsw", ef_search=True)
    with pytest.raises(AttributeError, match="no nprobe"):
        EmbeddingIndex(refs, y_refs).nprobe = 4
    with pytest.raises(
        ValueError, match="nprobe applies to an 'ivf' index, not 'flat'"
    ):
        EmbeddingIndex(refs, y_refs, nprobe=4)
    with pytest.raises(ValueError, match="ef_search applies to an 'hnsw' index"):
        EmbeddingIndex(refs, y_refs, kind="ivf", ef_search=4)
    with pytest.raises(AttributeError, match="no nlist"):
        EmbeddingIndex(refs, y_refs).nlist
    assert EmbeddingIndex(refs, y_refs, kind="ivf").nlist == round(4 * np.sqrt(400))


def test_bad_queries_k_and_additions_raise_and_change_nothing(data):
    refs, y_refs, queries, _ = data
    index = EmbeddingIndex(refs, y_refs)
    with pytest.raises(ValueError, match="dimension 7, the index holds dimension 8"):
        index.search(queries[:, :7])
    nan = queries.copy()
    nan[0, 0] = np.inf
    with pytest.raises(ValueError, match="queries holds NaN or inf"):
        index.search(nan)
    with pytest.raises(ValueError, match="at most the 400 references"):
        index.search(queries, k=401)
    with pytest.raises(ValueError, match="k must be >= 1"):
        index.search(queries, k=0)
    with pytest.raises(TypeError, match="k must be an int"):
        index.search(queries, k=2.0)
    with pytest.raises(ValueError, match="NaN or inf"):
        index.add(nan, np.zeros(len(nan), dtype=int))
    with pytest.raises(ValueError, match="dimension"):
        index.add(refs[:, :3], y_refs)
    assert len(index) == 400 and len(index.labels) == 400  # nothing was added


def test_numpy_integer_options_save_and_load(data, tmp_path):
    refs, y_refs, queries, _ = data
    index = EmbeddingIndex(
        refs, y_refs, kind="hnsw", hnsw_m=np.int64(8), ef_construction=np.int32(20)
    )
    loaded = EmbeddingIndex.load(index.save(tmp_path / "h.npz"))
    assert repr(loaded) == repr(index)
    np.testing.assert_array_equal(
        loaded.search(queries, k=3).indices, index.search(queries, k=3).indices
    )


def test_a_file_whose_parts_disagree_is_not_an_index(data, tmp_path):
    refs, y_refs, _, _ = data
    good = EmbeddingIndex(refs, y_refs, kind="ivf", nlist=8).save(tmp_path / "i.npz")
    with np.load(good) as saved:
        parts = dict(saved)
    params = json.loads(bytes(parts["params"]).decode())
    for name, change in (
        ("kind", {**params, "kind": "hnsw"}),  # an inverted file saved as a graph
        ("nprobe", {k: v for k, v in params.items() if k != "nprobe"}),
    ):
        bad = tmp_path / f"bad_{name}.npz"
        text = json.dumps(change).encode()
        np.savez(bad, **{**parts, "params": np.frombuffer(text, dtype=np.uint8)})
        with pytest.raises(ValueError, match="is not an EmbeddingIndex file"):
            EmbeddingIndex.load(bad)


def test_a_corrupt_or_missing_file_raises_and_a_failed_save_writes_nothing(
    data, tmp_path, monkeypatch
):
    refs, y_refs, _, _ = data
    index = EmbeddingIndex(refs, y_refs)
    good = index.save(tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:1000])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    for path in (truncated, garbage):
        with pytest.raises(ValueError, match="is not an EmbeddingIndex file"):
            EmbeddingIndex.load(path)
    with pytest.raises(FileNotFoundError, match="no index file"):
        EmbeddingIndex.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="no folder"):
        index.save(tmp_path / "missing" / "index.npz")

    before = good.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        EmbeddingIndex(refs[:10], y_refs[:10]).save(good)
    assert good.read_bytes() == before  # the older file is intact
    assert sorted(os.listdir(tmp_path)) == ["garbage.npz", "good.npz", "truncated.npz"]
