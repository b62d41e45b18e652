"""Honest throughput measurements: warm-up, ``time.perf_counter``, medians.

The training measurements build the seed recipe with the functions of
:mod:`tripletutils.training` (the one way the book trains); this module builds
on the other ``tripletutils`` modules.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time
from typing import Dict, List, Sequence

os.environ.setdefault(
    "TF_CPP_MIN_LOG_LEVEL", "3"
)  # before TensorFlow loads: no start-up lines

import keras
import numpy as np
import tensorflow as tf

from .metrics import nearest_neighbours
from .recipes import SEED_RECIPE
from .sampling import seed_offline_triplets, triplet_dataset
from .training import (
    build_recipe_net,
    build_training_model,
    make_loss,
    make_optimizer,
    recipe_inputs,
)

__all__ = [
    "hardware_info",
    "embedding_throughput",
    "training_throughput",
    "search_time",
    "peak_memory_mib",
    "main",
]


def hardware_info() -> Dict[str, str]:
    """Describe the machine and software a measurement ran on.

    Returns
    -------
    dict of str to str
        ``cpu`` (model name from /proc/cpuinfo, else ``platform.processor()``),
        ``cores`` (logical CPUs usable by this process), ``python``,
        ``tensorflow``, ``keras``, ``onednn`` (the ``TF_ENABLE_ONEDNN_OPTS``
        setting, "default (on)" when unset) and ``gpus`` (count).
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": str(cores),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "gpus": str(len(tf.config.list_physical_devices("GPU"))),
    }


def embedding_throughput(
    model: keras.Model,
    images: np.ndarray,
    batch_sizes: Sequence[int] = (1, 32, 256, 1024),
    repeats: int = 5,
    min_images: int = 2048,
) -> List[Dict[str, float]]:
    """Images per second of ``model`` in inference, per batch size.

    For each batch size: one compiled ``tf.function`` call on a batch already
    in memory as a tensor (so no input conversion is timed), two warm-up
    passes, then ``repeats`` timed passes of at least ``min_images`` images
    each, timed with ``time.perf_counter``; the median pass gives the figure.

    Parameters
    ----------
    model : keras.Model
        The embedding network (one input).
    images : numpy.ndarray
        At least ``max(batch_sizes)`` images, shape ``(N, *input_shape)``.
    batch_sizes : sequence of int, default (1, 32, 256, 1024)
    repeats : int, default 5
    min_images : int, default 2048
        Images per timed pass (rounded up to whole batches).

    Returns
    -------
    list of dict
        Per batch size: ``batch_size``, ``images_per_second`` (median),
        ``ms_per_batch`` (median), ``spread`` ((max - min) / median of the
        per-pass rates).

    Raises
    ------
    TypeError, ValueError
        On a non-model, too few images or non-positive sizes.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    sizes = [int(b) for b in batch_sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"batch_sizes must be positive ints, got {list(batch_sizes)}")
    if not isinstance(images, np.ndarray) or len(images) < max(sizes):
        raise ValueError(
            f"images must be a numpy array with at least {max(sizes)} rows"
        )
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    rows = []
    for b in sizes:
        batch = tf.constant(images[:b], tf.float32)
        calls = max(1, -(-min_images // b))
        fn(batch).numpy()  # trace and warm up
        for _ in range(2):
            for _ in range(calls):
                out = fn(batch)
            out.numpy()
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                out = fn(batch)
            out.numpy()  # wait for the last result
            rates.append(calls * b / (time.perf_counter() - start))
        med = statistics.median(rates)
        rows.append(
            {
                "batch_size": b,
                "images_per_second": med,
                "ms_per_batch": 1000.0 * b / med,
                "spread": (max(rates) - min(rates)) / med,
            }
        )
    return rows


def training_throughput(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    steps: int = 300,
    steps_per_execution: int = 1,
    seed: int = 0,
    fused: bool = False,
    jit_compile: bool = False,
    precision: str = "float32",
    feed: str = "dataset",
    repeats: int = 1,
) -> Dict[str, object]:
    """Triplets per second of the seed recipe's training, whole ``fit`` calls timed.

    Builds the seed's network and three-input model (raw 0..255 pixels,
    squared distances, margin 1, Adam), warms up with one short ``fit`` call,
    then times ``repeats`` ``fit`` calls of ``steps`` batches of the seed's
    offline triplets, each from its start to its return (so a stall after the
    last epoch counts); the median call gives the figure.

    Parameters
    ----------
    images : numpy.ndarray
        ``float32`` images in [0, 1], shape ``(N, 28, 28, 1)``.
    labels : numpy.ndarray
        Integer labels, shape ``(N,)``.
    batch_size : int
    steps : int, default 300
    steps_per_execution : int, default 1
        Passed to ``model.compile``.
    seed : int, default 0
    fused : bool, default False
        Run the shared network once on the three inputs stacked
        (``build_triplet_model(..., fused=True)``).
    jit_compile : bool, default False
        Passed to ``model.compile`` (XLA).
    precision : str, default "float32"
        Keras dtype policy of the network's computations (e.g.
        ``"mixed_bfloat16"``); the loss stays float32.
    feed : {"dataset", "arrays"}, default "dataset"
        ``"arrays"``: the seed's way, three NumPy arrays of images (one row
        per triplet) given to ``model.fit`` with ``batch_size`` and
        ``shuffle=True``. ``"dataset"``: :func:`tripletutils.sampling.triplet_dataset`,
        a ``tf.data`` pipeline that gathers each batch's images by index from
        one in-memory tensor and prefetches.
    repeats : int, default 1
        Timed ``fit`` calls (on the same model, one after the other).

    Returns
    -------
    dict
        ``batch_size``, ``steps``, ``steps_per_execution``, ``fused``,
        ``jit_compile``, ``precision``, ``feed``, ``seconds`` (median call),
        ``seconds_all`` (list), ``triplets_per_second`` and
        ``seconds_per_60000_triplets`` (from the median).

    Raises
    ------
    ValueError
        On a non-positive size, an unknown ``feed`` or too few triplets.
    """
    if min(batch_size, steps, steps_per_execution, repeats) < 1:
        raise ValueError(
            "batch_size, steps, steps_per_execution and repeats must be at least 1, "
            "got "
            f"{batch_size}, {steps}, {steps_per_execution}, {repeats}"
        )
    if feed not in ("dataset", "arrays"):
        raise ValueError(f'feed must be "dataset" or "arrays", got {feed!r}')
    triplets = seed_offline_triplets(labels, seed=seed)
    needed = batch_size * steps
    if needed > len(triplets):
        raise ValueError(
            f"{steps} steps of {batch_size} need {needed} triplets, "
            f"only {len(triplets)} exist"
        )
    # The seed recipe with this batch (p * k // 3 = batch_size triplets), built
    # by the same functions as tripletutils.training.train.
    recipe = dataclasses.replace(
        SEED_RECIPE,
        name="bench",
        p=3 if batch_size > 1 else 2,
        k=batch_size if batch_size > 1 else 2,
        steps=steps,
        epochs=1,
        steps_per_execution=steps_per_execution,
        fused=fused,
        precision=precision,
    )
    keras.utils.set_random_seed(seed)
    _, model = build_training_model(recipe, build_recipe_net(recipe, seed=seed))
    model.compile(
        optimizer=make_optimizer(recipe),
        loss=make_loss(recipe),
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    raw = recipe_inputs(recipe, images)
    warm_rows = min(needed, batch_size * 2 * steps_per_execution)
    if feed == "arrays":
        names = ("anchor", "positive", "negative")
        arrays = {name: raw[triplets[:needed, j]] for j, name in enumerate(names)}
        dummy = np.zeros(needed, np.float32)

        def run(rows):
            model.fit(
                {k: v[:rows] for k, v in arrays.items()},
                dummy[:rows],
                batch_size=batch_size,
                epochs=1,
                verbose=0,
                shuffle=True,
            )
    else:

        def run(rows):
            data = triplet_dataset(raw, triplets[:rows], batch_size, seed=seed)
            model.fit(
                data, epochs=1, verbose=0, shuffle=False
            )  # the dataset shuffles itself

    run(warm_rows)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(needed)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    rate = needed / seconds
    return {
        "batch_size": batch_size,
        "steps": steps,
        "steps_per_execution": steps_per_execution,
        "fused": fused,
        "jit_compile": jit_compile,
        "precision": precision,
        "feed": feed,
        "seconds": seconds,
        "seconds_all": times,
        "triplets_per_second": rate,
        "seconds_per_60000_triplets": 60000 / rate,
    }


def search_time(
    queries: np.ndarray, references: np.ndarray, k: int = 1, repeats: int = 3
) -> Dict[str, float]:
    """Seconds for an exact k-nearest-neighbour search (median of ``repeats``).

    Parameters
    ----------
    queries, references : numpy.ndarray
        Shapes ``(Q, dim)`` and ``(N, dim)``.
    k : int, default 1
    repeats : int, default 3

    Returns
    -------
    dict
        ``queries``, ``references``, ``dim``, ``k`` and ``seconds`` (median).
    """
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        nearest_neighbours(queries, references, k)
        times.append(time.perf_counter() - start)
    return {
        "queries": int(len(queries)),
        "references": int(len(references)),
        "dim": int(queries.shape[1]),
        "k": int(k),
        "seconds": statistics.median(times),
    }


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux ``ru_maxrss``)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


#: The training rows: label, then the keyword arguments of
#: :func:`training_throughput`. The first row is the plain Keras 3 port of the
#: seed (``model.fit`` on three NumPy arrays, batch 32), which the others are
#: compared to; each following row adds one change.
TRAINING_CONFIGS = (
    (
        "plain port: fit on NumPy arrays (batch 32)",
        dict(batch_size=32, steps=300, feed="arrays"),
    ),
    ("+ tf.data pipeline (gather by index, prefetch)", dict(batch_size=32, steps=300)),
    (
        "+ tf.data + steps_per_execution=100",
        dict(batch_size=32, steps=300, steps_per_execution=100),
    ),
    ("+ tf.data + fused branches", dict(batch_size=32, steps=300, fused=True)),
    (
        "+ tf.data + fused + spe=100",
        dict(batch_size=32, steps=300, steps_per_execution=100, fused=True),
    ),
    (
        "+ tf.data + fused + spe=25 + XLA",
        dict(
            batch_size=32,
            steps=50,
            steps_per_execution=25,
            fused=True,
            jit_compile=True,
        ),
    ),
    (
        "+ tf.data + fused + spe=100 + bfloat16",
        dict(
            batch_size=32,
            steps=300,
            steps_per_execution=100,
            fused=True,
            precision="mixed_bfloat16",
        ),
    ),
    (
        "batch 256, NumPy arrays (changes the optimisation)",
        dict(batch_size=256, steps=40, feed="arrays"),
    ),
    (
        "batch 256 + tf.data + fused + spe=10 + bfloat16",
        dict(
            batch_size=256,
            steps=40,
            steps_per_execution=10,
            fused=True,
            precision="mixed_bfloat16",
        ),
    ),
)


def main(argv=None) -> int:
    """``python -m tripletutils.bench``: print a table and write JSON.

    Parameters
    ----------
    argv : list of str, optional
        ``--output PATH`` (default ``bench.json``), ``--mnist PATH`` (else
        ``TRIPLETUTILS_MNIST`` or Keras's download), ``--repeats N`` (timed
        passes per embedding batch size), ``--rounds N`` (rounds over all the
        training rows; each row's figure is its median round).

    Returns
    -------
    int
        0 on success.
    """
    import argparse
    import json

    from .data import load_mnist
    from .models import build_embedding_net

    parser = argparse.ArgumentParser(
        prog="python -m tripletutils.bench", description=main.__doc__
    )
    parser.add_argument(
        "--output", default="bench.json", help="where to write the JSON results"
    )
    parser.add_argument("--mnist", default=None, help="path of a local mnist.npz")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed repeats per embedding batch size"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds over the training rows (median taken)",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    (x_train, y_train), (x_test, _) = load_mnist(args.mnist)
    import datetime

    results = {
        "date": datetime.date.today().isoformat(),
        "command": "python -m tripletutils.bench",
        "hardware": hardware_info(),
        "training": [],
        "embedding": [],
        "search": None,
    }
    print(
        f"{results['hardware']['cpu']}, {results['hardware']['cores']} cores, "
        f"TensorFlow {results['hardware']['tensorflow']}, "
        f"oneDNN {results['hardware']['onednn']}"
    )
    # Rounds over all rows, not repeats of one row after another: the machine's
    # speed drifts over minutes, and interleaving spreads the drift over all rows.
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    runs = {label: [] for label, _ in TRAINING_CONFIGS}
    for round_ in range(args.rounds):
        for label, kwargs in TRAINING_CONFIGS:
            runs[label].append(training_throughput(x_train, y_train, **kwargs))
        print(f"training round {round_ + 1} of {args.rounds} done")
    base = None
    for label, kwargs in TRAINING_CONFIGS:
        rows = runs[label]
        row = dict(
            sorted(rows, key=lambda r: r["seconds"])[len(rows) // 2]
        )  # the median round
        row["seconds_all"] = [r["seconds"] for r in rows]
        row["label"] = label
        base = base or row["seconds_per_60000_triplets"]
        results["training"].append(row)
        per_round = ", ".join(
            f"{60000 * t / (row['steps'] * row['batch_size']):.1f}"
            for t in row["seconds_all"]
        )
        print(
            f"train  {label:52s}: {row['triplets_per_second']:7,.0f} triplets/s  "
            f"{row['seconds_per_60000_triplets']:6.2f} s per 60,000  "
            f"x{base / row['seconds_per_60000_triplets']:.2f}"
            f"  (rounds: {per_round})"
        )
    from .models import mixed_precision_copy

    net = build_embedding_net(seed=0)
    images = x_test[:4096] * np.float32(255.0)
    for policy in ("float32", "mixed_bfloat16"):
        model = net if policy == "float32" else mixed_precision_copy(net, policy)
        for row in embedding_throughput(
            model, images, batch_sizes=(1, 32, 256, 1024, 4096), repeats=args.repeats
        ):
            row["precision"] = policy
            results["embedding"].append(row)
            print(
                f"embed  {policy:14s} batch {row['batch_size']:4d}: "
                f"{row['images_per_second']:9,.0f} images/s  "
                f"(spread {row['spread']:.0%})"
            )
    from .evaluation import embed

    train_e = embed(net, x_train * np.float32(255.0))
    test_e = embed(net, x_test * np.float32(255.0))
    results["search"] = search_time(test_e, train_e, k=1)
    print(
        f"search {results['search']['queries']} queries x "
        f"{results['search']['references']} references "
        f"(dim {results['search']['dim']}): {results['search']['seconds']:.2f} s"
    )
    results["peak_memory_mib"] = peak_memory_mib()
    results["total_seconds"] = time.perf_counter() - started
    print(
        f"peak memory {results['peak_memory_mib']:.0f} MiB, "
        f"total {results['total_seconds']:.0f} s"
    )
    with open(args.output, "w") as fh:
        json.dump(results, fh, indent=2)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
