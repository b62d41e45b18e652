"""Honest throughput measurements: warm-up, ``time.perf_counter``, medians.

Imports numpy, keras and tensorflow only (plus the standard library).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Dict, List, Sequence

import keras
import numpy as np
import tensorflow as tf

__all__ = ["hardware_info", "embedding_throughput"]


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
        raise ValueError(f"images must be a numpy array with at least {max(sizes)} rows")
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
