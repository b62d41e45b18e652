"""Where a training step's time goes: TensorFlow's profiler on the compiled loop.

``python -m tripletutils.step_profile`` (``make profile``) trains the
benchmark's fastest batch-32 configuration (the seed recipe in the compiled
loop, fused branches, 100 steps per call, bfloat16) under
``tf.profiler.experimental`` and sorts the recorded time of the executor's
threads into operation kernels, by kind (convolutions, the dense layer,
activations and pooling, dropout, the optimizer's updates, precision casts,
the batch gather), executor work outside the kernels, and idle time, per
step. The result goes to ``tripletutils/results/step_profile_2cores.json``
with the code fingerprint and the machine; chapter 12 reads it.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import glob
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from .bench import compiled_seed_steps, seed_training_model  # noqa: E402
from .fingerprint import code_fingerprint  # noqa: E402
from .runtime import hardware_info  # noqa: E402
from .training import recipe_inputs  # noqa: E402

__all__ = ["KINDS", "BOOK_PROFILE", "kind_of", "profile_training_steps", "main"]

#: The committed profile, ``make profile`` on the book's 2-core machine.
BOOK_PROFILE = Path(__file__).resolve().parent / "results" / "step_profile_2cores.json"
#: The kinds of operation the profile sorts kernel time into, in order.
KINDS = (
    "convolutions",
    "dense layer",
    "activations and pooling",
    "dropout",
    "optimizer updates",
    "precision casts",
    "batch gather",
    "other operations",
)


def kind_of(event: str) -> str:
    """The kind of a profiled kernel, from its event name ``"<op name>:<op type>"``.

    Parameters
    ----------
    event : str
        An executor event's name, e.g.
        ``"while/body/_1/.../conv2d_1/Relu:_MklNativeFusedConv2D"``.

    Returns
    -------
    str
        One of :data:`KINDS`.

    Raises
    ------
    TypeError
        If ``event`` is not a str.
    ValueError
        If it holds no ``":"`` (not a kernel's event).
    """
    if not isinstance(event, str):
        raise TypeError(f"event must be a str, got {type(event).__name__}")
    if ":" not in event:
        raise ValueError(f"not a kernel event (no ':'): {event!r}")
    name, op = event.rsplit(":", 1)
    lower = name.lower()
    if "conv2d" in op.lower() and "/dropout" not in lower:
        return "convolutions"
    if "matmul" in op.lower():
        return "dense layer"
    if "/dropout" in lower:
        return "dropout"
    if "adam" in lower or "Assign" in op or op.startswith("ResourceApply"):
        return "optimizer updates"
    if "relu" in op.lower() or "pool" in op.lower():
        return "activations and pooling"
    if op == "Cast":
        return "precision casts"
    if op in ("GatherV2", "ResourceGather") or (
        op == "StridedSlice" and "gradient_tape" not in lower
    ):
        return "batch gather"
    return "other operations"


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def profile_training_steps(
    images: np.ndarray,
    labels: np.ndarray,
    steps: int = 600,
    batch_size: int = 32,
    steps_per_execution: int = 100,
    precision: str = "mixed_bfloat16",
    seed: int = 0,
) -> Dict[str, object]:
    """Profile ``steps`` training steps of the seed recipe in the compiled loop.

    Builds the benchmark's configuration with the functions of
    :mod:`tripletutils.training` (fused branches, ``steps_per_execution``
    steps per call, ``precision`` computed as asked, whatever the CPU), warms
    up with two calls, times ``steps`` steps unprofiled, then the next
    ``steps`` under TensorFlow's profiler, and sorts the kernel events of the
    executor's threads (``tf_Compute``) by :func:`kind_of`.

    Parameters
    ----------
    images : numpy.ndarray
        ``float32`` images in [0, 1], shape ``(N, 28, 28, 1)``.
    labels : numpy.ndarray
        Integer labels, shape ``(N,)``.
    steps : int, default 600
        A multiple of ``steps_per_execution``.
    batch_size : int, default 32
        Triplets per step (at least 2).
    steps_per_execution : int, default 100
    precision : {"mixed_bfloat16", "float32"}, default "mixed_bfloat16"
    seed : int, default 0

    Returns
    -------
    dict
        ``steps``, ``batch_size``, ``steps_per_execution``, ``precision``,
        ``seconds_unprofiled`` and ``seconds_profiled`` (the two timed runs),
        ``threads`` (the executor threads), ``kernel_seconds``,
        ``executor_seconds`` (inside the executor, outside kernels),
        ``idle_seconds`` (the threads' time outside the executor),
        ``kernels_per_step``, ``kinds`` (kind -> kernel seconds) and
        ``ops`` (op type -> kernel seconds, the 15 largest), all summed
        over the executor threads; ``ms_per_step`` (unprofiled).

    Raises
    ------
    TypeError, ValueError
        On bad sizes or precision, or arrays of the wrong shape.
    RuntimeError
        If the profiler wrote no trace or its trace holds no kernel event.
    """
    steps = _check_positive_int("steps", steps)
    batch_size = _check_positive_int("batch_size", batch_size)
    spe = _check_positive_int("steps_per_execution", steps_per_execution)
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2, got {batch_size}")
    if steps % spe:
        raise ValueError(f"steps ({steps}) must be a multiple of {spe}")
    if precision not in ("mixed_bfloat16", "float32"):
        raise ValueError(
            f'precision must be "mixed_bfloat16" or "float32", got {precision!r}'
        )
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise ValueError("images must be a 4-D array (N, 28, 28, 1)")
    if not isinstance(labels, np.ndarray) or labels.shape != (len(images),):
        raise ValueError("labels must be a 1-D array with one label per image")
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    recipe, model = seed_training_model(
        batch_size, 2 * spe + 2 * steps, spe, True, precision, seed
    )
    run = compiled_seed_steps(
        recipe, model, recipe_inputs(recipe, images), labels, seed
    )

    def timed(start: int, n: int) -> float:
        began = time.perf_counter()
        for s in range(start, start + n, spe):
            out = run(tf.constant(s, tf.int64), tf.constant(spe, tf.int64))
        out.numpy()
        return time.perf_counter() - began

    timed(0, 2 * spe)  # warm-up: tracing and the first calls
    unprofiled = timed(2 * spe, steps)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            profiled = timed(2 * spe + steps, steps)
        finally:
            tf.profiler.experimental.stop()
        traces = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
        if not traces:
            raise RuntimeError("the profiler wrote no trace")
        space = xplane_pb2.XSpace()
        space.ParseFromString(Path(traces[0]).read_bytes())
    kinds = collections.Counter({k: 0.0 for k in KINDS})
    ops: collections.Counter = collections.Counter()
    threads, kernels, in_executor, count = 0, 0.0, 0.0, 0
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            threads += 1
            for event in line.events:
                name, seconds = (
                    names.get(event.metadata_id, ""),
                    event.duration_ps / 1e12,
                )
                if name == "ExecutorState::Process":
                    in_executor += seconds
                elif ":" in name and not name.startswith("Threadpool"):
                    count += 1
                    kernels += seconds
                    kinds[kind_of(name)] += seconds
                    ops[name.rsplit(":", 1)[1]] += seconds
    if not count:
        raise RuntimeError("the profiler's trace holds no kernel event")
    return {
        "steps": steps,
        "batch_size": batch_size,
        "steps_per_execution": spe,
        "precision": precision,
        "seconds_unprofiled": unprofiled,
        "seconds_profiled": profiled,
        "ms_per_step": 1000 * unprofiled / steps,
        "threads": threads,
        "kernel_seconds": kernels,
        "executor_seconds": max(in_executor - kernels, 0.0),
        "idle_seconds": max(threads * profiled - in_executor, 0.0),
        "kernels_per_step": count / steps,
        "kinds": dict(kinds),
        "ops": dict(ops.most_common(15)),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m tripletutils.step_profile``: profile and write the JSON."""
    from .data import load_mnist

    parser = argparse.ArgumentParser(
        prog="python -m tripletutils.step_profile",
        description="Where a training step's time goes (TensorFlow's profiler).",
    )
    parser.add_argument("--output", type=Path, default=BOOK_PROFILE)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--mnist", default=None, help="a local mnist.npz")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    (x_train, y_train), _ = load_mnist(args.mnist)
    rows: List[Dict[str, object]] = []
    for precision in ("mixed_bfloat16", "float32"):
        row = profile_training_steps(x_train, y_train, args.steps, precision=precision)
        rows.append(row)
        busy = row["threads"] * row["seconds_profiled"]
        print(
            f"{precision:14s} {row['ms_per_step']:.2f} ms per step unprofiled; "
            f"of {busy:.2f} thread-s: kernels {row['kernel_seconds']:.2f}, "
            f"executor {row['executor_seconds']:.2f}, idle {row['idle_seconds']:.2f}; "
            f"{row['kernels_per_step']:.0f} kernels per step"
        )
        for kind, seconds in sorted(row["kinds"].items(), key=lambda kv: -kv[1]):
            print(f"    {kind:24s} {seconds:6.3f} s")
    result = {
        "date": datetime.date.today().isoformat(),
        "command": "python -m tripletutils.step_profile",
        "code_fingerprint": code_fingerprint(),
        "hardware": hardware_info(),
        "profiles": rows,
        "total_seconds": time.perf_counter() - started,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.output)
    print(f"wrote {args.output} in {result['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
