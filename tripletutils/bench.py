"""Honest throughput measurements: warm-up, ``time.perf_counter``, medians.

The training measurements build the seed recipe with the functions of
:mod:`tripletutils.training` (the one way the book trains); this module builds
on the other ``tripletutils`` modules.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

os.environ.setdefault(
    "TF_CPP_MIN_LOG_LEVEL", "3"
)  # before TensorFlow loads: no start-up lines

import keras
import numpy as np
import tensorflow as tf

from .metrics import nearest_neighbours
from .recipes import FAST_SEED_RECIPE, SEED_RECIPE
from .runtime import hardware_info
from .sampling import seed_offline_triplets, triplet_dataset
from .training import (
    Recipe,
    batch_schedule,
    build_recipe_net,
    build_training_model,
    compiled_train_function,
    make_loss,
    make_optimizer,
    recipe_inputs,
    train,
)

__all__ = [
    "BOOK_BENCHMARK",
    "embedding_throughput",
    "training_throughput",
    "compiled_seed_steps",
    "seed_training_model",
    "time_to_quality",
    "flops_per_image",
    "gemm_peak",
    "training_floor",
    "search_time",
    "peak_memory_mib",
    "main",
]

#: The benchmark chapter 12 reads, ``make bench`` on the book's 2-core machine,
#: installed with the package (so a chapter opened alone needs no ten-minute run).
BOOK_BENCHMARK = Path(__file__).resolve().parent / "results" / "cpu_2cores.json"


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


def seed_training_model(
    batch_size: int,
    steps: int,
    steps_per_execution: int = 1,
    fused: bool = False,
    precision: str = "float32",
    seed: int = 0,
    jit_compile: bool = False,
) -> Tuple[Recipe, keras.Model]:
    """The seed recipe at a batch size and its compiled three-input model.

    Built by the functions :func:`tripletutils.training.train` uses; the
    benchmark and :mod:`tripletutils.step_profile` time this model.

    Parameters
    ----------
    batch_size : int
        Triplets per step (``p * k // 3``: 3 classes of ``batch_size`` images).
    steps : int
        The recipe's steps (the length of its batch schedule).
    steps_per_execution : int, default 1
    fused : bool, default False
    precision : {"float32", "mixed_bfloat16"}, default "float32"
        Computed as asked, whatever the CPU.
    seed : int, default 0
    jit_compile : bool, default False
        Passed to ``model.compile``.

    Returns
    -------
    (Recipe, keras.Model)

    Raises
    ------
    TypeError, ValueError
        On settings the recipe or the model refuses.
    """
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
    return recipe, model


def compiled_seed_steps(
    recipe: Recipe,
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
):
    """The compiled loop over a benchmark recipe's batches, ready to time.

    Parameters
    ----------
    recipe : Recipe
        The recipe the model was built from (its ``loop`` is set to
        ``"compiled"`` here).
    model : keras.Model
        Its compiled three-input model.
    images : numpy.ndarray
        ``float32`` images as the network takes them, shape ``(N, 28, 28, 1)``.
    labels : numpy.ndarray
        Integer labels, shape ``(N,)``.
    seed : int, default 0
        The seed of the batch schedule.

    Returns
    -------
    callable
        ``run(start, n)`` (scalar ``int64`` tensors), as
        :func:`tripletutils.training.compiled_train_function` returns it.

    Raises
    ------
    TypeError, ValueError
        As :func:`tripletutils.training.compiled_train_function` raises them.
    """
    compiled = dataclasses.replace(recipe, loop="compiled")
    schedule = batch_schedule(compiled, labels, seed=seed)
    return compiled_train_function(compiled, model, images, labels, schedule)


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
    feed : {"dataset", "arrays", "compiled"}, default "dataset"
        ``"arrays"``: the seed's way, three NumPy arrays of images (one row
        per triplet) given to ``model.fit`` with ``batch_size`` and
        ``shuffle=True``. ``"dataset"``: :func:`tripletutils.sampling.triplet_dataset`,
        a ``tf.data`` pipeline that gathers each batch's images by index from
        one in-memory tensor and prefetches. ``"compiled"``: no ``fit``; the
        compiled loop of ``loop="compiled"`` recipes
        (:func:`tripletutils.training.compiled_train_function`), all images
        in one tensor, each step's triplets gathered by index in the graph,
        ``steps_per_execution`` steps per call.
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
    if feed not in ("dataset", "arrays", "compiled"):
        raise ValueError(
            f'feed must be "dataset", "arrays" or "compiled", got {feed!r}'
        )
    if feed == "compiled" and jit_compile:
        raise ValueError("jit_compile applies to model.fit, not to the compiled loop")
    triplets = seed_offline_triplets(labels, seed=seed)
    needed = batch_size * steps
    if needed > len(triplets):
        raise ValueError(
            f"{steps} steps of {batch_size} need {needed} triplets, "
            f"only {len(triplets)} exist"
        )
    recipe, model = seed_training_model(
        batch_size, steps, steps_per_execution, fused, precision, seed, jit_compile
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
    elif feed == "compiled":
        steps_of = compiled_seed_steps(recipe, model, raw, labels, seed)

        def run(rows):
            n = rows // batch_size
            for start in range(0, n, steps_per_execution):
                block = min(steps_per_execution, n - start)
                out = steps_of(
                    tf.constant(start, tf.int64), tf.constant(block, tf.int64)
                )
            out.numpy()  # wait for the last call

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


class _QualityClock(keras.callbacks.Callback):
    """Training time (evaluation excluded) until a validation metric is reached."""

    def __init__(self, x_val: Dict[str, tf.Tensor], every: int, target, squared: bool):
        super().__init__()
        self.x_val, self.every, self.target = x_val, every, target
        self.squared = squared
        self.checks: List[Dict[str, float]] = []
        self.reached = None
        self._steps = 0

    def on_train_begin(self, logs=None):
        self._elapsed = 0.0
        self._start = time.perf_counter()
        self._epoch_start = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._steps

    def on_train_batch_end(self, batch, logs=None):
        # ``batch`` is the last step done in this epoch: under fit with
        # steps_per_execution > 1 one call covers several steps, and the
        # compiled loop calls once per step; counting calls would miscount
        done = self._epoch_start + int(batch) + 1
        passed = done // self.every > self._steps // self.every
        self._steps = done
        if passed:
            self._check()

    def on_train_end(self, logs=None):
        if not self.checks or self.checks[-1]["step"] != self._steps:
            self._check()

    def _check(self):
        self._elapsed += time.perf_counter() - self._start
        out = self.model.predict(self.x_val, batch_size=1024, verbose=0)
        a, p, n = np.split(np.asarray(out, np.float64), 3, axis=1)
        d_ap, d_an = ((a - p) ** 2).sum(1), ((a - n) ** 2).sum(1)
        if not self.squared:
            d_ap, d_an = np.sqrt(d_ap), np.sqrt(d_an)
        metric = float(np.mean(d_ap - d_an < 0))  # the seed's metric
        self.checks.append(
            {"step": self._steps, "seconds": self._elapsed, "seed_metric": metric}
        )
        if self.target is not None and metric >= self.target and self.reached is None:
            self.reached = self.checks[-1]
            self.model.stop_training = True
        self._start = time.perf_counter()


def time_to_quality(
    recipe,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    target: Optional[float] = None,
    check_every: int = 200,
    seed: int = 0,
) -> Dict[str, object]:
    """Training time until a triplet recipe reaches a seed metric on validation.

    The way MLPerf Training measures: the clock runs from the start of
    training (after the network is built: tracing and compilation count) and
    stops at the first check whose metric reaches ``target``; the time spent
    evaluating is not counted. Every ``check_every`` steps (and at the end)
    the training model, in inference mode, scores the seed's offline
    triplets of the validation split (seed 1) with the seed's metric, the
    share of triplets with ``d(a, p) < d(a, n)``.

    Parameters
    ----------
    recipe : tripletutils.training.Recipe
        A triplet scheme (``seed_triplets`` or ``random_triplets``).
    x_train, x_val : numpy.ndarray
        ``float32`` images in [0, 1], shape ``(N, 28, 28, 1)``.
    y_train, y_val : numpy.ndarray
        Integer labels, shape ``(N,)``.
    target : float, optional
        Stop training when a check reaches it. None: train the whole budget.
    check_every : int, default 200
        A multiple of ``recipe.steps_per_execution``.
    seed : int, default 0

    Returns
    -------
    dict
        ``checks`` (list of ``{"step", "seconds", "seed_metric"}``),
        ``reached`` (the first check at or above ``target``, or None),
        ``seconds`` (its training time, or None), ``final`` (the last
        check's metric), ``target``, ``recipe`` (dict), ``seed``.

    Raises
    ------
    ValueError
        On an online recipe or a ``check_every`` that is not a positive
        multiple of ``steps_per_execution``.
    """
    if not recipe.triplet_model:
        raise ValueError(
            f"time_to_quality needs a triplet scheme, got {recipe.mining!r}"
        )
    if (
        isinstance(check_every, bool)
        or not isinstance(check_every, int)
        or check_every < 1
        or check_every % recipe.steps_per_execution
    ):
        raise ValueError(
            "check_every must be a positive multiple of steps_per_execution="
            f"{recipe.steps_per_execution}, got {check_every!r}"
        )
    triplets = seed_offline_triplets(y_val, seed=1)
    xv = tf.constant(recipe_inputs(recipe, x_val))
    x_val_t = {
        name: tf.gather(xv, triplets[:, j])
        for j, name in enumerate(("anchor", "positive", "negative"))
    }
    clock = _QualityClock(x_val_t, check_every, target, recipe.squared)
    train(recipe, x_train, y_train, seed=seed, callbacks=[clock])
    reached = clock.reached
    return {
        "recipe": dataclasses.asdict(recipe),
        "seed": seed,
        "target": target,
        "checks": clock.checks,
        "reached": reached,
        "seconds": None if reached is None else reached["seconds"],
        "final": clock.checks[-1]["seed_metric"],
    }


def _layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def flops_per_image(model: keras.Model) -> int:
    """Floating-point operations of one image through a network's layers.

    Counts the multiply-adds (2 FLOPs each) of the ``Conv2D`` and ``Dense``
    layers, nested models included; activations, pooling and the rest are
    left out (a few percent at most for these networks).

    Parameters
    ----------
    model : keras.Model
        Built, with known output shapes per layer.

    Returns
    -------
    int
        FLOPs per image.

    Raises
    ------
    TypeError
        If ``model`` is not a Keras model.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    total = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            total += 2 * h * w * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = layer.kernel.shape
            total += 2 * cin * cout
    return int(total)


def training_floor(flops_per_image: int, gflops: float, triplets: int = 60000) -> float:
    """Seconds to train on ``triplets`` triplets at a matrix product's rate.

    A training step runs the network forward and backward on the three images
    of each triplet; the backward pass costs about twice the forward (the
    gradients with respect to the inputs and to the weights, each one product
    of the forward's size), so a triplet costs ``3 * 3 * flops_per_image``.
    At ``gflops`` (a large matrix product's rate, :func:`gemm_peak`), that
    arithmetic alone takes the returned time: a practical floor, which a
    training loop can approach but not pass at that rate.

    Parameters
    ----------
    flops_per_image : int
        Forward FLOPs of one image (:func:`flops_per_image`), positive.
    gflops : float
        The arithmetic rate, in GFLOP/s, positive.
    triplets : int, default 60000

    Returns
    -------
    float
        Seconds.

    Raises
    ------
    TypeError
        If an argument is not a number (``flops_per_image`` and ``triplets``
        integers).
    ValueError
        If an argument is not positive and finite.
    """
    for name, value, kinds in (
        ("flops_per_image", flops_per_image, (int, np.integer)),
        ("gflops", gflops, (int, float, np.integer, np.floating)),
        ("triplets", triplets, (int, np.integer)),
    ):
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive and finite, got {value}")
    return 3 * 3 * int(flops_per_image) * int(triplets) / (float(gflops) * 1e9)


def gemm_peak(dtype: str = "bfloat16", n: int = 2048, repeats: int = 5) -> Dict:
    """Measured matrix-multiply throughput: an arithmetic limit for this CPU.

    Times ``repeats`` calls of a compiled ``n x n`` by ``n x n`` product in
    ``dtype`` after two warm-up calls, the same way as
    :func:`embedding_throughput` (a ``tf.function`` on tensors in memory,
    ``time.perf_counter``, the median).

    Parameters
    ----------
    dtype : {"float32", "bfloat16"}, default "bfloat16"
    n : int, default 2048
    repeats : int, default 5

    Returns
    -------
    dict
        ``dtype``, ``n``, ``gflops`` (median, ``2 n^3`` FLOPs a call),
        ``gflops_all``.

    Raises
    ------
    ValueError
        On another dtype or a non-positive size.
    """
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f'dtype must be "float32" or "bfloat16", got {dtype!r}')
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or repeats < 1:
        raise ValueError(f"n and repeats must be positive ints, got {n!r}, {repeats!r}")
    rng = np.random.default_rng(0)
    a = tf.cast(tf.constant(rng.random((n, n), np.float32)), dtype)
    b = tf.cast(tf.constant(rng.random((n, n), np.float32)), dtype)
    fn = tf.function(tf.matmul)
    for _ in range(2):
        fn(a, b).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(a, b).numpy()
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return {
        "dtype": dtype,
        "n": n,
        "gflops": statistics.median(rates),
        "gflops_all": rates,
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
        "+ tf.data + fused + spe=100 + XLA",
        dict(
            batch_size=32,
            steps=300,
            steps_per_execution=100,
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
        "compiled loop, float32 (no fit; spe=100)",
        dict(batch_size=32, steps=300, steps_per_execution=100, feed="compiled"),
    ),
    (
        "compiled loop + fused + spe=100 + bfloat16",
        dict(
            batch_size=32,
            steps=300,
            steps_per_execution=100,
            fused=True,
            precision="mixed_bfloat16",
            feed="compiled",
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
    (
        "batch 256 + compiled loop + fused + spe=10 + bfloat16",
        dict(
            batch_size=256,
            steps=40,
            steps_per_execution=10,
            fused=True,
            precision="mixed_bfloat16",
            feed="compiled",
        ),
    ),
)


def _time_to_quality_rows(x_train, y_train, seeds, check_every=200) -> Dict:
    """Plain (``fit``) vs fast seed recipe: time to the plain runs' mean metric.

    On the book's split (54,001 / 5,999 validation). The plain runs first
    train the seed's budget; the target is the mean of their final validation
    metric. A plain run that did not reach it within the budget is run again
    (same seed, so the same first epochs: the learning rate is constant) with
    twice the budget, stopping at the target; the fast runs get twice the
    budget too and stop at the target.
    """
    from .sampling import split_indices

    train_idx, val_idx = split_indices(y_train, 0.1, seed=0)
    data = (x_train[train_idx], y_train[train_idx], x_train[val_idx], y_train[val_idx])
    longer = {"epochs": 2 * SEED_RECIPE.epochs}
    first = {}
    for seed in seeds:
        first[seed] = time_to_quality(SEED_RECIPE, *data, None, check_every, seed)
        print(f"time to quality: plain seed {seed}, final {first[seed]['final']:.4f}")
    target = float(np.mean([r["final"] for r in first.values()]))
    plain, fast = {}, {}
    for seed in seeds:
        hit = next(
            (c for c in first[seed]["checks"] if c["seed_metric"] >= target), None
        )
        if hit is not None:
            plain[seed] = dict(first[seed], reached=hit, seconds=hit["seconds"])
        else:
            recipe = dataclasses.replace(SEED_RECIPE, **longer)
            plain[seed] = time_to_quality(recipe, *data, target, check_every, seed)
        recipe = dataclasses.replace(FAST_SEED_RECIPE, **longer)
        fast[seed] = time_to_quality(recipe, *data, target, check_every, seed)
        print(
            f"time to quality: seed {seed}, plain {plain[seed]['seconds']} s, "
            f"fast {fast[seed]['seconds']} s"
        )

    def summary(runs):
        times = [r["seconds"] if r["seconds"] is not None else math.inf for r in runs]
        med = statistics.median(times)
        return {
            "median_seconds": None if math.isinf(med) else med,
            "seconds": [None if math.isinf(t) else t for t in times],
            "steps": [
                None if r["reached"] is None else r["reached"]["step"] for r in runs
            ],
            "runs": runs,
        }

    return {
        "split": "split_indices(y_train, 0.1, seed=0): 54,001 train / 5,999 validation",
        "metric": "seed metric on seed_offline_triplets(y_val, seed=1)",
        "check_every": check_every,
        "target": target,
        "target_from": "mean final validation metric of the plain runs (seed's budget)",
        "plain": summary([plain[s] for s in seeds]),
        "fast": summary([fast[s] for s in seeds]),
        "seeds": list(seeds),
    }


def _floor_rows(results: Dict) -> List[Dict]:
    """Per precision: the training floor and the embedding limit, against the
    fastest batch-32 training row and the fastest embedding batch size."""
    flops = results["arithmetic"]["flops_per_image"]
    plain = results["training"][0]["seconds_per_60000_triplets"]
    rows = []
    for gemm in results["arithmetic"]["gemm"]:
        policy = "float32" if gemm["dtype"] == "float32" else "mixed_bfloat16"
        same = [
            r
            for r in results["training"]
            if r["batch_size"] == 32 and r["precision"] == policy
        ]
        best = min(same, key=lambda r: r["seconds_per_60000_triplets"])
        embed_best = max(
            r["images_per_second"]
            for r in results["embedding"]
            if r["precision"] == policy
        )
        floor = training_floor(flops, gemm["gflops"])
        rows.append(
            {
                "dtype": gemm["dtype"],
                "floor_seconds": floor,
                "best_label": best["label"],
                "best_seconds": best["seconds_per_60000_triplets"],
                "floor_ratio": best["seconds_per_60000_triplets"] / floor,
                "plain_ratio": plain / best["seconds_per_60000_triplets"],
                "embed_best": embed_best,
                "embed_share": embed_best / gemm["images_per_second_limit"],
            }
        )
    return rows


def main(argv=None) -> int:
    """``python -m tripletutils.bench``: print a table and write JSON.

    Parameters
    ----------
    argv : list of str, optional
        ``--output PATH`` (default ``bench.json``), ``--mnist PATH`` (else
        ``TRIPLETUTILS_MNIST`` or Keras's download), ``--repeats N`` (timed
        passes per embedding batch size), ``--rounds N`` (rounds over all the
        training rows; each row's figure is its median round), ``--ttq-seeds
        N`` (seeds of the time-to-quality rows, default 3; 0 skips them).

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
    parser.add_argument(
        "--ttq-seeds",
        type=int,
        default=3,
        help="seeds of the time-to-quality rows (0: skip them)",
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
    if args.ttq_seeds > 0:
        ttq = _time_to_quality_rows(x_train, y_train, range(args.ttq_seeds))
        results["time_to_quality"] = ttq
        plain_s, fast_s = ttq["plain"]["median_seconds"], ttq["fast"]["median_seconds"]
        print(
            f"time to quality (seed metric {ttq['target']:.4f} on validation, "
            f"median of {args.ttq_seeds} seeds): plain {plain_s} s, fast {fast_s} s"
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
    flops = flops_per_image(net)
    results["arithmetic"] = {
        "flops_per_image": flops,
        "gemm": [gemm_peak(dtype) for dtype in ("float32", "bfloat16")],
    }
    for row in results["arithmetic"]["gemm"]:
        row["images_per_second_limit"] = row["gflops"] * 1e9 / flops
        print(
            f"gemm   {row['dtype']:14s} {row['n']}^3: {row['gflops']:7.1f} GFLOP/s, "
            f"limit {row['images_per_second_limit']:9,.0f} images/s at "
            f"{flops / 1e6:.2f} MFLOP per image"
        )
    results["arithmetic"]["floor"] = _floor_rows(results)
    for row in results["arithmetic"]["floor"]:
        print(
            f"floor  {row['dtype']:14s} training {row['floor_seconds']:5.2f} s per "
            f"60,000 triplets; fastest batch-32 row {row['best_seconds']:5.2f} s, "
            f"{row['floor_ratio']:.2f} x the floor, {row['plain_ratio']:.2f} x faster "
            f"than the plain port; embedding {row['embed_share']:.0%} of the limit"
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
