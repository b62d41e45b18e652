import json

import numpy as np
import pytest

from tripletutils.bench import embedding_throughput
from tripletutils.runtime import hardware_info
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


def _count_fit_calls(monkeypatch, stall=0.0):
    """Wrap keras.Model.fit: record the optimizer's steps after each call."""
    import time

    import keras

    real_fit = keras.Model.fit
    iterations = []

    def fit(self, *args, **kwargs):
        history = real_fit(self, *args, **kwargs)
        time.sleep(stall)  # a stall after the last epoch must be timed too
        iterations.append(int(self.optimizer.iterations.numpy()))
        return history

    monkeypatch.setattr(keras.Model, "fit", fit)
    return iterations


def _random_images(n=120, classes=3):
    """n random images in [0, 1) of ``classes`` classes, in turn."""
    rng = np.random.default_rng(0)
    return rng.random((n, 28, 28, 1)).astype(np.float32), np.arange(n) % classes


@pytest.mark.slow
@pytest.mark.parametrize("feed", ["dataset", "arrays"])
def test_training_throughput_times_whole_fit_calls(monkeypatch, feed):
    from tripletutils.bench import training_throughput

    x, y = _random_images()
    iterations = _count_fit_calls(monkeypatch, stall=0.25)
    row = training_throughput(x, y, batch_size=8, steps=4, feed=feed, repeats=3)
    # a warm-up call of 2 steps, then 3 timed calls of exactly 4 steps each
    assert np.diff([0] + iterations).tolist() == [2, 4, 4, 4]
    # each timed call includes the stall: rates cannot exceed 32 triplets / 0.25 s
    assert len(row["seconds_all"]) == 3 and min(row["seconds_all"]) >= 0.25
    assert row["seconds"] in row["seconds_all"]
    assert row["seconds"] == sorted(row["seconds_all"])[1]  # the median of three
    assert 0 < row["triplets_per_second"] <= 32 / 0.25
    assert row["seconds_per_60000_triplets"] >= 60000 / (32 / 0.25)


@pytest.mark.slow
def test_training_throughput_options_and_bad_input(monkeypatch):
    from tripletutils.bench import training_throughput

    x, y = _random_images()
    iterations = _count_fit_calls(monkeypatch)
    fast = training_throughput(
        x,
        y,
        batch_size=8,
        steps=4,
        steps_per_execution=2,
        fused=True,
        precision="mixed_bfloat16",
    )
    assert fast["fused"] is True and fast["precision"] == "mixed_bfloat16"
    assert np.diff([0] + iterations).tolist() == [4, 4]  # warm-up: 2 x spe steps
    with pytest.raises(ValueError, match="need"):
        training_throughput(x, y, batch_size=64, steps=10)
    with pytest.raises(ValueError, match='feed must be "dataset", "arrays" or'):
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


@pytest.mark.slow
def test_training_throughput_compiled_loop_runs_every_step_without_fit(monkeypatch):
    from tripletutils.bench import training_throughput

    x, y = _random_images()
    iterations = _count_fit_calls(monkeypatch)
    row = training_throughput(
        x, y, batch_size=8, steps=6, steps_per_execution=4, feed="compiled", repeats=2
    )
    assert iterations == []  # no fit call at all
    assert row["feed"] == "compiled" and len(row["seconds_all"]) == 2
    assert row["triplets_per_second"] == pytest.approx(48 / row["seconds"])
    with pytest.raises(ValueError, match="jit_compile applies to model.fit"):
        training_throughput(
            x, y, batch_size=8, steps=3, feed="compiled", jit_compile=True
        )


@pytest.mark.slow
def test_time_to_quality_stops_at_the_target_and_excludes_evaluation():
    import dataclasses

    from tripletutils.bench import time_to_quality
    from tripletutils.recipes import SEED_RECIPE
    from tripletutils.training import Recipe

    rng = np.random.default_rng(0)
    y = np.arange(240) % 4
    x = rng.random((240, 28, 28, 1)).astype(np.float32) * 0.2
    for i, c in enumerate(y):
        x[i, c * 6 : c * 6 + 4, :, 0] += 0.8  # learnable in a few steps
    recipe = dataclasses.replace(SEED_RECIPE, p=4, k=6, epochs=3)  # 8 triplets
    data = (x[:200], y[:200], x[200:], y[200:])
    full = time_to_quality(recipe, *data, target=None, check_every=5)
    steps = [c["step"] for c in full["checks"]]
    assert steps[:3] == [5, 10, 15] and full["reached"] is None
    assert (
        full["seconds"] is None and full["final"] == full["checks"][-1]["seed_metric"]
    )
    seconds = [c["seconds"] for c in full["checks"]]
    assert seconds == sorted(seconds) and seconds[0] > 0
    # a target met at a check stops training there; its time is that check's
    target = full["checks"][1]["seed_metric"]
    first = next(c for c in full["checks"] if c["seed_metric"] >= target)
    stop = time_to_quality(recipe, *data, target=target, check_every=5)
    assert stop["reached"]["step"] == first["step"] == stop["checks"][-1]["step"]
    assert stop["seconds"] == stop["reached"]["seconds"]
    compiled = dataclasses.replace(recipe, loop="compiled", steps_per_execution=5)
    fast = time_to_quality(compiled, *data, target=target, check_every=5)
    assert fast["reached"]["step"] == first["step"]  # the same batches and weights
    # fit with several steps per call reports once per call: the checks still
    # fall on the same steps (a count of calls put the first at step 25)
    blocks = dataclasses.replace(recipe, steps_per_execution=5)
    by_blocks = time_to_quality(blocks, *data, target=None, check_every=5)
    assert [c["step"] for c in by_blocks["checks"]] == steps
    with pytest.raises(ValueError, match="multiple of steps_per_execution"):
        time_to_quality(compiled, *data, check_every=7)
    with pytest.raises(ValueError, match="needs a triplet scheme"):
        time_to_quality(Recipe("r", p=4, k=4, steps=2), *data)


def test_flops_per_image_counts_convolutions_and_dense_layers():
    import keras

    from tripletutils.bench import flops_per_image

    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="valid")(inputs)  # 6 x 6 x 4
    h = keras.layers.Flatten()(h)
    inner = keras.Model(inputs, keras.layers.Dense(5)(h))
    outer_in = keras.Input((8, 8, 1))
    outer = keras.Model(outer_in, keras.layers.Dense(2)(inner(outer_in)))
    expected = 2 * 6 * 6 * 3 * 3 * 1 * 4 + 2 * 144 * 5 + 2 * 5 * 2
    assert flops_per_image(outer) == expected
    with pytest.raises(TypeError, match="keras.Model"):
        flops_per_image("net")


def test_gemm_peak_measures_and_checks_input():
    from tripletutils.bench import gemm_peak

    row = gemm_peak("float32", n=64, repeats=3)
    assert row["dtype"] == "float32" and len(row["gflops_all"]) == 3
    assert row["gflops"] == sorted(row["gflops_all"])[1] > 0
    with pytest.raises(ValueError, match="dtype must be"):
        gemm_peak("float16")
    with pytest.raises(ValueError, match="positive ints"):
        gemm_peak("float32", n=0)


def test_training_floor_is_nine_forward_passes_per_triplet_at_the_rate():
    from tripletutils.bench import training_floor

    # 1 MFLOP forward per image, 100 triplets, 9 GFLOP/s: 9e8 FLOPs -> 0.1 s
    assert training_floor(10**6, 9.0, triplets=100) == pytest.approx(0.1)
    assert training_floor(10**6, 18.0, triplets=100) == pytest.approx(0.05)
    for bad, error in (
        (dict(flops_per_image=1.5, gflops=1.0), TypeError),
        (dict(flops_per_image=True, gflops=1.0), TypeError),
        (dict(flops_per_image=10, gflops="1"), TypeError),
        (dict(flops_per_image=0, gflops=1.0), ValueError),
        (dict(flops_per_image=10, gflops=float("nan")), ValueError),
        (dict(flops_per_image=10, gflops=1.0, triplets=-1), ValueError),
    ):
        with pytest.raises(error):
            training_floor(**bad)


def test_the_committed_benchmark_states_the_floor_and_the_ratios():
    from tripletutils.bench import BOOK_BENCHMARK, training_floor

    results = json.loads(BOOK_BENCHMARK.read_text())
    arithmetic = results["arithmetic"]
    labels = [r["label"] for r in results["training"]]
    xla = [r for r in results["training"] if r["jit_compile"]]
    assert len(xla) == 1 and xla[0]["steps_per_execution"] == 100, labels
    assert xla[0]["steps"] == 300  # like the other batch-32 rows
    floors = {row["dtype"]: row for row in arithmetic["floor"]}
    assert set(floors) == {"float32", "bfloat16"}
    for gemm in arithmetic["gemm"]:
        row = floors[gemm["dtype"]]
        expected = training_floor(arithmetic["flops_per_image"], gemm["gflops"])
        assert row["floor_seconds"] == pytest.approx(expected)
        assert row["floor_ratio"] == pytest.approx(row["best_seconds"] / expected)
        assert row["best_label"] in labels and row["floor_ratio"] > 1
        assert 0 < row["embed_share"] < 1
