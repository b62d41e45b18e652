import numpy as np
import pytest

from tripletutils.bench import embedding_throughput, hardware_info
from tripletutils.models import build_embedding_net


def test_hardware_info_fields():
    info = hardware_info()
    assert set(info) == {
        "cpu",
        "cores",
        "python",
        "tensorflow",
        "keras",
        "onednn",
        "gpus",
    }
    assert int(info["cores"]) >= 1 and info["tensorflow"].startswith("2.")


def test_embedding_throughput_rows():
    net = build_embedding_net(embedding_dim=8, seed=0)
    x = np.zeros((64, 28, 28, 1), np.float32)
    rows = embedding_throughput(net, x, batch_sizes=(1, 64), repeats=2, min_images=64)
    assert [r["batch_size"] for r in rows] == [1, 64]
    for r in rows:
        assert r["images_per_second"] > 0
        assert r["ms_per_batch"] == pytest.approx(
            1000 * r["batch_size"] / r["images_per_second"]
        )


def test_embedding_throughput_bad_input():
    net = build_embedding_net(embedding_dim=8, seed=0)
    with pytest.raises(ValueError, match="at least 64 rows"):
        embedding_throughput(net, np.zeros((4, 28, 28, 1)), batch_sizes=(64,))
    with pytest.raises(TypeError, match="keras.Model"):
        embedding_throughput(None, np.zeros((4, 28, 28, 1)))


def test_training_throughput_on_tiny_data():
    from tripletutils.bench import training_throughput

    rng = np.random.default_rng(0)
    x = rng.random((120, 28, 28, 1)).astype(np.float32)
    y = np.arange(120) % 3
    row = training_throughput(x, y, batch_size=8, steps=4, steps_per_execution=2)
    assert row["triplets_per_second"] > 0
    assert row["seconds_per_60000_triplets"] == pytest.approx(
        60000 / row["triplets_per_second"]
    )
    with pytest.raises(ValueError, match="need"):
        training_throughput(x, y, batch_size=64, steps=10)
    fast = training_throughput(
        x,
        y,
        batch_size=8,
        steps=4,
        steps_per_execution=2,
        fused=True,
        precision="mixed_bfloat16",
    )
    assert (
        fast["fused"] is True
        and fast["precision"] == "mixed_bfloat16"
        and fast["triplets_per_second"] > 0
    )


def test_training_throughput_arrays_feed_and_repeats():
    from tripletutils.bench import training_throughput

    rng = np.random.default_rng(0)
    x = rng.random((120, 28, 28, 1)).astype(np.float32)
    y = np.arange(120) % 3
    row = training_throughput(x, y, batch_size=8, steps=3, feed="arrays", repeats=3)
    assert row["feed"] == "arrays" and len(row["seconds_all"]) == 3
    assert row["seconds"] == sorted(row["seconds_all"])[1]  # the median of three
    assert row["triplets_per_second"] == pytest.approx(24 / row["seconds"])
    with pytest.raises(ValueError, match='feed must be "dataset" or "arrays"'):
        training_throughput(x, y, batch_size=8, steps=3, feed="generator")
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        training_throughput(x, y, batch_size=8, steps=3, repeats=0)


def test_search_time_and_memory():
    from tripletutils.bench import peak_memory_mib, search_time

    rng = np.random.default_rng(0)
    row = search_time(
        rng.normal(size=(20, 4)), rng.normal(size=(50, 4)), k=3, repeats=2
    )
    assert row["queries"] == 20 and row["references"] == 50 and row["seconds"] > 0
    assert peak_memory_mib() > 10
