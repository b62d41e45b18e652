"""The search benchmark: exact and approximate search over MNIST embeddings.

``python -m tripletutils.search_bench`` (``make bench-search``) trains one
network (:data:`SEARCH_RECIPE`), embeds MNIST's 60,000 training digits as the
references and a sample of its test digits as the queries, and measures
:class:`tripletutils.search.EmbeddingIndex` of each kind at two sizes: the
60,000 real references, and about a million, the same digits with 16 more
copies each shifted by up to 2 pixels (real images through the real network:
a larger reference set with the statistics of this one, clearly not new
digits). For every index and knob it records the build seconds, the memory
per reference, the recall@1 against exact search (the share of queries whose
nearest reference is the exact one), Precision@1 by label, the throughput of
a batched search and the latency of single queries (median and 99th
percentile), and writes them with what identifies the code and the machine to
:data:`SEARCH_BENCHMARK` (package data, which chapter 14 reads).

Builds on the others: copy the package for it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .data import load_mnist
from .evaluation import embed
from .fingerprint import TRAINING_MODULES, code_fingerprint
from .recipes import BEST_RECIPE
from .runtime import hardware_info, set_seed
from .search import EmbeddingIndex

__all__ = [
    "SEARCH_BENCHMARK",
    "SEARCH_RECIPE",
    "IVF_NPROBES",
    "HNSW_EF_SEARCH",
    "shifted_copies",
    "shift_images",
    "measure_index",
    "run_search_benchmark",
    "main",
]

#: The committed results of the search benchmark (package data).
SEARCH_BENCHMARK = Path(__file__).resolve().parent / "results" / "search_2cores.json"

#: The network whose embeddings are searched, chapter 8's recipe with a
#: shorter budget, in float32 on every CPU (so its embeddings do not depend on
#: bfloat16 support).
SEARCH_RECIPE = dataclasses.replace(
    BEST_RECIPE, name="search", steps=600, precision="float32"
)

#: The ``nprobe`` values measured for the inverted file.
IVF_NPROBES = (1, 2, 4, 8, 16, 32, 64)

#: The ``ef_search`` values measured for the HNSW graph.
HNSW_EF_SEARCH = (8, 16, 32, 64, 128, 256)

#: The modules whose code the results depend on: the training modules but the
#: experiments' definitions (which the benchmark does not use: editing an
#: experiment's description leaves it current), and the search modules.
SEARCH_MODULES = tuple(m for m in TRAINING_MODULES if m != "experiments.py") + (
    "search.py",
    "search_bench.py",
)


def shifted_copies(images: np.ndarray, copies: int, seed: int = 0) -> List[tuple]:
    """The ``(dy, dx)`` shifts of ``copies`` shifted copies of a set of digits.

    Parameters
    ----------
    images : numpy.ndarray
        Shape ``(N, 28, 28)`` or ``(N, 28, 28, 1)``; only checked here.
    copies : int
        How many distinct shifts, ``1 <= copies <= 24``.
    seed : int, default 0

    Returns
    -------
    list of tuple of int
        ``copies`` distinct shifts ``(dy, dx)``, each in ``-2..2`` and never
        ``(0, 0)``; apply one with :func:`shift_images`.
    """
    if not isinstance(images, np.ndarray) or images.ndim not in (3, 4):
        raise ValueError("images must be a numpy array of shape (N, H, W[, 1])")
    if isinstance(copies, bool) or not isinstance(copies, int):
        raise TypeError(f"copies must be an int, got {type(copies).__name__}")
    if not 1 <= copies <= 24:
        raise ValueError(f"copies must be in 1..24, got {copies}")
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dy or dx]
    order = np.random.default_rng(seed).permutation(len(shifts))[:copies]
    return [shifts[i] for i in sorted(order)]


def shift_images(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images moved ``dy`` rows down and ``dx`` columns right, blank filled in.

    Pixels pushed past an edge are dropped and the uncovered rows and columns
    are zero (some MNIST digits reach within 2 pixels of the edge, so a
    circular ``np.roll`` would wrap their ink to the other side).

    Parameters
    ----------
    images : numpy.ndarray
        Shape ``(N, H, W)`` or ``(N, H, W, C)``, any dtype.
    dy, dx : int
        Shifts, ``|dy| < H`` and ``|dx| < W``.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``images``.
    """
    if not isinstance(images, np.ndarray) or images.ndim not in (3, 4):
        raise ValueError("images must be a numpy array of shape (N, H, W[, C])")
    height, width = images.shape[1:3]
    for value, name, size in ((dy, "dy", height), (dx, "dx", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if abs(value) >= size:
            raise ValueError(f"|{name}| must be below {size}, got {value}")
    out = np.zeros_like(images)
    rows = slice(max(dy, 0), height + min(dy, 0)), slice(max(-dy, 0), height - dy)
    cols = slice(max(dx, 0), width + min(dx, 0)), slice(max(-dx, 0), width - dx)
    out[:, rows[0], cols[0]] = images[:, rows[1], cols[1]]
    return out


def measure_index(
    index: EmbeddingIndex,
    queries: np.ndarray,
    query_labels: np.ndarray,
    exact_nearest: np.ndarray,
    n_latency: int = 200,
) -> Dict[str, float]:
    """Recall@1, Precision@1, batched throughput and single-query latency.

    Parameters
    ----------
    index : EmbeddingIndex
    queries : numpy.ndarray
        ``(Q, dim)`` float32.
    query_labels : numpy.ndarray
        ``(Q,)`` integers.
    exact_nearest : numpy.ndarray
        ``(Q,)`` int64: each query's nearest reference by exact search.
    n_latency : int, default 200
        Queries searched one at a time for the latency (the first ones).

    Returns
    -------
    dict of str to float
        ``recall_at_1``, ``precision_at_1``, ``queries_per_second`` (one
        batched call), ``latency_ms_p50`` and ``latency_ms_p99``.
    """
    if len(queries) != len(query_labels) or len(queries) != len(exact_nearest):
        raise ValueError("need one label and one exact neighbour per query")
    if isinstance(n_latency, bool) or not isinstance(n_latency, int) or n_latency < 1:
        raise ValueError(f"n_latency must be a positive int, got {n_latency!r}")
    start = time.perf_counter()
    found = index.search(queries, k=1)
    batch_seconds = time.perf_counter() - start
    latencies = []
    for q in queries[:n_latency]:
        start = time.perf_counter()
        index.search(q[None, :], k=1)
        latencies.append(time.perf_counter() - start)
    ms = 1000 * np.asarray(latencies)
    return {
        "recall_at_1": float(np.mean(found.indices[:, 0] == exact_nearest)),
        "precision_at_1": float(np.mean(found.labels[:, 0] == query_labels)),
        "queries_per_second": float(len(queries) / batch_seconds),
        "latency_ms_p50": float(np.percentile(ms, 50)),
        "latency_ms_p99": float(np.percentile(ms, 99)),
    }


def _rows_for(
    name: str,
    references: np.ndarray,
    labels: np.ndarray,
    queries: np.ndarray,
    query_labels: np.ndarray,
    n_latency: int,
    log,
) -> List[Dict]:
    rows = []

    def add_row(kind: str, knob: Optional[str], value, index, build_s, exact):
        row = {
            "references": name,
            "n": len(index),
            "kind": kind,
            "knob": knob,
            "value": value,
            "build_seconds": build_s,
            "bytes_per_vector": index.memory_bytes() / len(index),
            **measure_index(index, queries, query_labels, exact, n_latency),
        }
        rows.append(row)
        log(
            f"{name:9s} {kind:4s} {knob or '':9s} {value if value else '':>4}: "
            f"recall@1 {row['recall_at_1']:.4f}, P@1 {row['precision_at_1']:.4f}, "
            f"p50 {row['latency_ms_p50']:.3f} ms, p99 {row['latency_ms_p99']:.3f} ms, "
            f"{row['bytes_per_vector']:.0f} B/vector, build {build_s:.1f} s"
        )

    start = time.perf_counter()
    flat = EmbeddingIndex(references, labels, kind="flat")
    build = time.perf_counter() - start
    exact = flat.search(queries, k=1).indices[:, 0]
    add_row("flat", None, None, flat, build, exact)
    del flat
    sweeps = (
        ("ivf", "nprobe", IVF_NPROBES, {"seed": 0}),
        ("hnsw", "ef_search", HNSW_EF_SEARCH, {"hnsw_m": 16}),
    )
    for kind, knob, values, options in sweeps:
        start = time.perf_counter()
        index = EmbeddingIndex(references, labels, kind=kind, **options)
        build = time.perf_counter() - start
        for value in values:
            setattr(index, knob, value)
            add_row(kind, knob, value, index, build, exact)
            if kind == "ivf":
                rows[-1]["nlist"] = index.nlist
        del index
    return rows


def run_search_benchmark(
    copies: int = 16,
    n_queries: int = 1000,
    n_latency: int = 200,
    steps: Optional[int] = None,
    mnist: Optional[str] = None,
    log=print,
) -> Dict:
    """Train, embed, build and measure; the results as a dict (see the module).

    Parameters
    ----------
    copies : int, default 16
        Shifted copies of the training digits in the large reference set
        ``"shifted_copies"`` (``60,000 * (1 + copies)`` references), 0 to 24;
        0: no large set.
    n_queries : int, default 1000
        Test digits searched (the first ``n_queries`` of a fixed permutation),
        1 to 10,000.
    n_latency : int, default 200
        Of them, searched one at a time for the latency, 1 to ``n_queries``.
    steps : int, optional
        Training steps (default :data:`SEARCH_RECIPE`'s).
    mnist : str, optional
        Passed to :func:`tripletutils.data.load_mnist`.
    log : callable, default print

    Returns
    -------
    dict
        ``date``, ``command``, ``hardware``, ``code_fingerprint``, ``recipe``,
        ``embedding`` (dimension, images per second), ``rows``, ``seconds``.
    """
    from .training import train

    for value, name, high in (
        (copies, "copies", 24),
        (n_queries, "n_queries", 10_000),
        (n_latency, "n_latency", n_queries),
    ):
        low = 0 if name == "copies" else 1
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if not low <= value <= high:
            raise ValueError(f"{name} must be in {low}..{high}, got {value}")
    started = time.perf_counter()
    set_seed(0)
    (x_train, y_train), (x_test, y_test) = load_mnist(mnist)
    recipe = (
        SEARCH_RECIPE
        if steps is None
        else dataclasses.replace(SEARCH_RECIPE, steps=steps)
    )
    net, _, history = train(recipe, x_train, y_train, seed=0)
    seconds = history["fit_seconds"]
    log(f"trained {recipe.name} for {recipe.steps} steps in {seconds:.0f} s")
    start = time.perf_counter()
    references = embed(net, x_train)
    rate = len(x_train) / (time.perf_counter() - start)
    pick = np.random.default_rng(0).permutation(len(x_test))[:n_queries]
    queries, query_labels = embed(net, x_test[pick]), y_test[pick].astype(np.int64)
    labels = y_train.astype(np.int64)
    rows = _rows_for(
        "mnist_60k", references, labels, queries, query_labels, n_latency, log
    )
    if copies:
        parts, part_labels = [references], [labels]
        for dy, dx in shifted_copies(x_train, copies, seed=0):
            parts.append(embed(net, shift_images(x_train, dy, dx)))
            part_labels.append(labels)
        big = np.concatenate(parts)
        del parts
        log(f"embedded {len(big):,} references for the large set")
        rows += _rows_for(
            "shifted_copies",
            big,
            np.concatenate(part_labels),
            queries,
            query_labels,
            n_latency,
            log,
        )
    import faiss

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": "python -m tripletutils.search_bench",
        "hardware": hardware_info(),
        "faiss": faiss.__version__,
        "faiss_threads": int(faiss.omp_get_max_threads()),
        "code_fingerprint": code_fingerprint(SEARCH_MODULES),
        "recipe": dataclasses.asdict(recipe),
        "copies": int(copies),
        "queries": {
            "n": int(n_queries),
            "latency_n": int(n_latency),
            "from": "MNIST test digits, a fixed permutation (seed 0)",
        },
        "embedding": {"dim": int(references.shape[1]), "images_per_second": rate},
        "rows": rows,
        "seconds": time.perf_counter() - started,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m tripletutils.search_bench [--output PATH] [--copies N] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m tripletutils.search_bench",
        description="The search benchmark: exact and approximate search over MNIST "
        "embeddings at 60,000 and about a million references (see the module).",
    )
    parser.add_argument("--output", type=Path, default=SEARCH_BENCHMARK)
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--mnist", default=None)
    args = parser.parse_args(argv)
    if not args.output.parent.is_dir():
        parser.error(f"no folder {args.output.parent} for {args.output.name}")
    results = run_search_benchmark(
        copies=args.copies,
        n_queries=args.queries,
        n_latency=args.latency,
        steps=args.steps,
        mnist=args.mnist,
    )
    tmp = args.output.with_name(f".{args.output.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, args.output)
    print(f"wrote {args.output} in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
