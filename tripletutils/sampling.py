"""Triplet sampling: the seed's offline scheme, random triplets and P x K batches.

Each scheme is available twice, from one implementation:

* as an **index array** (numpy), to look at, test and plot;
* as a **tf.data pipeline** that feeds ``model.fit`` with no per-sample Python
  work: indices are drawn in-graph and images are gathered in batches.

The random schemes use TensorFlow's stateless random ops, seeded with
``(seed, epoch)`` or ``(seed, step)``: the same seed gives the same triplets on
every run, and every epoch (or step) gets fresh ones.

This module imports only numpy and tensorflow, so it can be copied alone.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

__all__ = [
    "class_indices",
    "seed_offline_triplets",
    "random_triplets",
    "pk_batch_indices",
    "triplet_dataset",
    "random_triplet_dataset",
    "pk_dataset",
    "split_indices",
    "class_disjoint_folds",
    "check_classes",
]

_INPUT_NAMES = ("anchor", "positive", "negative")


# --------------------------------------------------------------------------- #
# Input checks
# --------------------------------------------------------------------------- #
def _check_labels(labels: np.ndarray, min_per_class: int = 2) -> np.ndarray:
    """Return labels as a 1-D int64 array, or raise a clear error."""
    if isinstance(labels, tf.Tensor):
        labels = labels.numpy()
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"labels must be a numpy array, got {type(labels).__name__}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (N,) or (N, 1), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"labels must have an integer dtype (class ids), got {labels.dtype}; "
            "convert one-hot labels with argmax and float labels with astype(int)"
        )
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(
            f"triplets need at least two classes (for a negative), got "
            f"{len(classes)} class(es): {classes.tolist()}"
        )
    small = classes[counts < min_per_class]
    if len(small):
        raise ValueError(
            f"every class needs at least {min_per_class} examples (an anchor and a "
            f"different positive); class(es) {small.tolist()} have fewer"
        )
    return labels.astype(np.int64)


def _check_seed(seed: int, name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(seed).__name__}")
    return int(seed)


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def _check_flag(value, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def _check_images(images: np.ndarray, n_labels: int) -> None:
    if not isinstance(images, (np.ndarray, tf.Tensor)):
        raise TypeError(f"images must be a numpy array, got {type(images).__name__}")
    if images.ndim < 2:
        raise ValueError(f"images must have shape (N, ...), got {tuple(images.shape)}")
    if images.shape[0] != n_labels:
        raise ValueError(
            f"images and labels must have the same length, got {images.shape[0]} "
            f"images and {n_labels} labels"
        )


def class_indices(labels: np.ndarray) -> Dict[int, np.ndarray]:
    """Map each class to the positions of its examples, in their original order.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer class ids, shape ``(N,)`` or ``(N, 1)``.

    Returns
    -------
    dict of int to numpy.ndarray
        ``{class: int64 array of positions}``, classes in increasing order.

    Raises
    ------
    TypeError
        If ``labels`` is not an integer numpy array.
    ValueError
        If ``labels`` has the wrong shape or fewer than two classes.
    """
    labels = _check_labels(labels, min_per_class=1)
    return {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}


# --------------------------------------------------------------------------- #
# The seed's offline scheme
# --------------------------------------------------------------------------- #
def seed_offline_triplets(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """The seed project's fixed triplets, as indices into ``labels``.

    For each class ``d`` (in increasing order) and ``i`` in ``0 .. n-1``, with
    ``n`` = (size of the smallest class) - 1:

    * anchor = the ``i``-th example of ``d``;
    * positive = the ``(i+1)``-th example of ``d``;
    * negative class = ``(d + r) mod C`` with ``r`` uniform in ``1 .. C-1``
      (``C`` classes), negative = the ``i``-th example of that class.

    The seed drew ``r`` with Python's unseeded ``random``; here it is seeded.
    Rows are grouped by class, ``n`` rows per class, as the seed's per-class
    evaluation expects. On full MNIST (smallest class: 5,421 fives) this gives
    10 x 5,420 = 54,200 triplets.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer class ids, shape ``(N,)`` or ``(N, 1)``; at least two classes,
        each with at least two examples.
    seed : int, default 0
        Seed of the negative-class draw.

    Returns
    -------
    numpy.ndarray
        ``int64`` array of shape ``(C * n, 3)``: columns anchor, positive,
        negative (positions in ``labels``).

    Raises
    ------
    TypeError
        If ``labels`` is not an integer array or ``seed`` is not an int.
    ValueError
        If there are fewer than two classes or a class has a single example.
    """
    labels = _check_labels(labels)
    seed = _check_seed(seed)
    by_class = class_indices(labels)
    classes = list(by_class)
    n_classes = len(classes)
    n = min(len(v) for v in by_class.values()) - 1
    rng = np.random.default_rng(seed)
    rows = []
    for d_pos, d in enumerate(classes):
        idx = by_class[d]
        offsets = rng.integers(1, n_classes, size=n)
        neg_class_pos = (d_pos + offsets) % n_classes
        # i-th example of each drawn negative class
        neg_table = np.stack([by_class[c][:n] for c in classes])  # (C, n)
        negatives = neg_table[neg_class_pos, np.arange(n)]
        rows.append(np.stack([idx[:n], idx[1 : n + 1], negatives], axis=1))
    return np.concatenate(rows).astype(np.int64)


# --------------------------------------------------------------------------- #
# In-graph random draws, shared by the index arrays and the pipelines
# --------------------------------------------------------------------------- #
class _ClassTable:
    """Labels sorted by class, as TensorFlow constants for in-graph sampling."""

    def __init__(self, labels: np.ndarray):
        classes, inverse, counts = np.unique(
            labels, return_inverse=True, return_counts=True
        )
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(len(labels), dtype=np.int64)
        rank[order] = np.arange(len(labels)) - starts[inverse[order]]
        self.n = len(labels)
        self.n_classes = len(classes)
        self.order = tf.constant(order, tf.int64)  # sorted position -> index
        self.cls = tf.constant(inverse, tf.int64)  # index -> class position
        self.rank = tf.constant(rank, tf.int64)  # index -> rank within its class
        self.starts = tf.constant(starts, tf.int64)
        self.counts = tf.constant(counts, tf.int64)
        self.max_count = int(counts.max())


def _uniform_below(shape, upper, seed) -> tf.Tensor:
    """Integers uniform in [0, upper) (``upper`` broadcast), stateless."""
    u = tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float64)
    upper = tf.cast(upper, tf.float64)
    return tf.minimum(
        tf.cast(tf.floor(u * upper), tf.int64), tf.cast(upper, tf.int64) - 1
    )


def _draw_random_triplets(
    table: _ClassTable, seed: tf.Tensor, n_rows: int
) -> tf.Tensor:
    """Shuffled anchors, each with a random positive and negative; (n_rows, 3)."""
    s = tf.random.experimental.stateless_split(seed, num=3)
    anchors = tf.argsort(tf.random.stateless_uniform([table.n], seed=s[0]))[:n_rows]
    anchors = tf.cast(anchors, tf.int64)
    c = tf.gather(table.cls, anchors)
    start, count = tf.gather(table.starts, c), tf.gather(table.counts, c)
    # positive: a uniform rank among the count-1 other members of the class
    r = _uniform_below([n_rows], count - 1, s[1])
    r = r + tf.cast(r >= tf.gather(table.rank, anchors), tf.int64)
    positives = tf.gather(table.order, start + r)
    # negative: a uniform position among the n - count examples of other classes
    q = _uniform_below([n_rows], table.n - count, s[2])
    q = q + tf.cast(q >= start, tf.int64) * count
    negatives = tf.gather(table.order, q)
    return tf.stack([anchors, positives, negatives], axis=1)


def _draw_pk_batch(table: _ClassTable, seed: tf.Tensor, p: int, k: int) -> tf.Tensor:
    """P distinct classes, K distinct examples of each; (p * k,) indices."""
    s = tf.random.experimental.stateless_split(seed, num=2)
    classes = tf.argsort(tf.random.stateless_uniform([table.n_classes], seed=s[0]))[:p]
    classes = tf.cast(classes, tf.int64)
    counts = tf.gather(table.counts, classes)
    u = tf.random.stateless_uniform([p, table.max_count], seed=s[1])
    valid = tf.range(table.max_count, dtype=tf.int64)[None, :] < counts[:, None]
    u = tf.where(valid, u, -tf.ones_like(u))  # padding never wins top_k
    ranks = tf.cast(tf.math.top_k(u, k=k).indices, tf.int64)  # (p, k) distinct
    positions = tf.gather(table.starts, classes)[:, None] + ranks
    return tf.reshape(tf.gather(table.order, positions), [-1])


def random_triplets(labels: np.ndarray, seed: int = 0, epoch: int = 0) -> np.ndarray:
    """One random triplet per anchor example, drawn anew for each epoch.

    Every example is an anchor once, in shuffled order. Its positive is drawn
    uniformly from the *other* examples of its class, its negative uniformly
    from all examples of the other classes.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer class ids, shape ``(N,)`` or ``(N, 1)``.
    seed : int, default 0
        Seed; with ``epoch`` it fixes the draw.
    epoch : int, default 0
        Epoch number; each epoch gives different triplets.

    Returns
    -------
    numpy.ndarray
        ``int64`` array of shape ``(N, 3)``: anchor, positive, negative
        positions. These are exactly the triplets that
        :func:`random_triplet_dataset` feeds in that epoch (before it drops
        the last incomplete batch).

    Raises
    ------
    TypeError
        If ``labels`` is not an integer array or ``seed``/``epoch`` not ints.
    ValueError
        If there are fewer than two classes or a class has a single example.
    """
    labels = _check_labels(labels)
    seed, epoch = _check_seed(seed), _check_seed(epoch, "epoch")
    table = _ClassTable(labels)
    out = _draw_random_triplets(table, tf.constant([seed, epoch], tf.int64), table.n)
    return out.numpy()


def pk_batch_indices(
    labels: np.ndarray, p: int, k: int, num_batches: int, seed: int = 0
) -> np.ndarray:
    """Class-balanced batches: P classes times K examples each.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer class ids, shape ``(N,)`` or ``(N, 1)``.
    p : int
        Classes per batch, at most the number of classes.
    k : int
        Examples per class, at least 2 (for a positive) and at most the size of
        the smallest class.
    num_batches : int
        How many batches to draw.
    seed : int, default 0
        Seed; batch ``b`` is drawn with seed ``(seed, b)``.

    Returns
    -------
    numpy.ndarray
        ``int64`` array of shape ``(num_batches, p * k)``; each row holds ``k``
        distinct positions from each of ``p`` distinct classes, grouped by
        class.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``p`` exceeds the number of classes, ``k`` exceeds the smallest
        class or is below 2, or ``labels`` is malformed.
    """
    labels = _check_labels(labels)
    table = _check_pk(labels, p, k)
    num_batches = _check_positive_int(num_batches, "num_batches")
    seed = _check_seed(seed)
    rows = [
        _draw_pk_batch(table, tf.constant([seed, b], tf.int64), p, k)
        for b in range(num_batches)
    ]
    return tf.stack(rows).numpy()


def _check_pk(labels: np.ndarray, p: int, k: int) -> _ClassTable:
    p, k = _check_positive_int(p, "p"), _check_positive_int(k, "k")
    table = _ClassTable(labels)
    if p > table.n_classes:
        raise ValueError(
            f"p={p} classes per batch, but the labels hold only {table.n_classes}"
        )
    if k < 2:
        raise ValueError(f"k must be at least 2 (an anchor and a positive), got {k}")
    smallest = int(tf.reduce_min(table.counts))
    if k > smallest:
        raise ValueError(
            f"k={k} examples per class, but the smallest class has only {smallest}"
        )
    return table


# --------------------------------------------------------------------------- #
# tf.data pipelines
# --------------------------------------------------------------------------- #
#: Parallel calls of the batch-gathering map (fixed: see :func:`_finish`).
_PARALLEL_CALLS = 2


def _finish(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Prefetch, and switch tf.data's autotuner off.

    The autotuner runs a background thread whose optimisation loop waits for
    growing periods; destroying an iterator waits for that thread, so
    ``model.fit`` returned several seconds after its last epoch with the CPU
    idle (we saw up to 20 s; a native stack dump shows the wait in
    ``RootDataset::Iterator::~Iterator``). With fixed parallelism and buffer
    sizes there is no such thread, and the epochs are no slower.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return ds.prefetch(2).with_options(options)


def _gather_triplets(images: tf.Tensor, batch: tf.Tensor):
    x = {
        name: tf.cast(tf.gather(images, batch[:, j]), tf.float32)
        for j, name in enumerate(_INPUT_NAMES)
    }
    return x, tf.zeros([tf.shape(batch)[0]], tf.float32)


def triplet_dataset(
    images: np.ndarray,
    triplets: np.ndarray,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int = 0,
    indices_only: bool = False,
) -> tf.data.Dataset:
    """Batches of fixed triplets for the three-input model.

    Parameters
    ----------
    images : numpy.ndarray
        All images, shape ``(N, ...)``, any numeric dtype (cast to float32
        batch by batch, so uint8 images stay small in memory).
    triplets : numpy.ndarray
        Integer array of shape ``(T, 3)``: anchor, positive, negative positions
        in ``images``, e.g. from :func:`seed_offline_triplets`.
    batch_size : int, default 32
    shuffle : bool, default True
        Reshuffle the triplets at every epoch (as ``model.fit`` did for the
        seed's arrays), seeded.
    seed : int, default 0
    indices_only : bool, default False
        Yield each batch's ``int64`` rows of ``triplets``, shape ``(batch, 3)``,
        instead of images: the same batches in the same order (what a
        training loop that gathers the images itself needs).

    Returns
    -------
    tf.data.Dataset
        Elements ``(x, y)``: ``x`` a dict with keys ``anchor``, ``positive``,
        ``negative``, each ``float32`` of shape ``(batch, ...)``; ``y`` dummy
        zeros of shape ``(batch,)`` (the triplet loss ignores it). Finite: one
        pass is one epoch; the last batch may be smaller. With
        ``indices_only``, the index batches.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``triplets`` is not ``(T, 3)`` or points outside ``images``.
    """
    _check_images(images, images.shape[0])
    if not isinstance(triplets, np.ndarray) or not np.issubdtype(
        triplets.dtype, np.integer
    ):
        raise TypeError(
            f"triplets must be an integer numpy array, got "
            f"{type(triplets).__name__} {getattr(triplets, 'dtype', '')}"
        )
    if triplets.ndim != 2 or triplets.shape[1] != 3 or len(triplets) == 0:
        raise ValueError(
            f"triplets must have shape (T, 3) with T > 0, got {triplets.shape}"
        )
    if triplets.min() < 0 or triplets.max() >= images.shape[0]:
        raise ValueError(
            f"triplet indices must lie in 0..{images.shape[0] - 1}, found "
            f"{triplets.min()}..{triplets.max()}"
        )
    batch_size = _check_positive_int(batch_size, "batch_size")
    seed = _check_seed(seed)
    _check_flag(indices_only, "indices_only")
    ds = tf.data.Dataset.from_tensor_slices(triplets.astype(np.int64))
    if shuffle:
        ds = ds.shuffle(len(triplets), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if indices_only:
        return _finish(ds)
    images_t = tf.constant(images)
    ds = ds.map(
        lambda b: _gather_triplets(images_t, b), num_parallel_calls=_PARALLEL_CALLS
    )
    return _finish(ds)


def random_triplet_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 32,
    seed: int = 0,
    triplets_per_epoch: Optional[int] = None,
    indices_only: bool = False,
) -> Tuple[tf.data.Dataset, int]:
    """An endless stream of random triplets, redrawn every epoch.

    Epoch ``e`` feeds the first ``steps_per_epoch * batch_size`` rows of
    ``random_triplets(labels, seed, epoch=e)``: a fresh random subset of the
    anchors when ``triplets_per_epoch`` is smaller than ``N``, else all but
    the few (fewer than one batch) that do not fill a batch.

    Parameters
    ----------
    images : numpy.ndarray
        Images, shape ``(N, ...)``, any numeric dtype.
    labels : numpy.ndarray
        Integer class ids, shape ``(N,)`` or ``(N, 1)``.
    batch_size : int, default 32
    seed : int, default 0
    triplets_per_epoch : int, optional
        Budget of one epoch (default ``N``, one triplet per example), e.g.
        the number of fixed triplets of another scheme, for a fair comparison.
    indices_only : bool, default False
        Yield ``int64`` index batches of shape ``(batch, 3)`` instead of images
        (as in :func:`triplet_dataset`).

    Returns
    -------
    dataset : tf.data.Dataset
        Infinite; elements as in :func:`triplet_dataset`, every batch full.
    steps_per_epoch : int
        ``triplets_per_epoch // batch_size``: pass it to
        ``model.fit(steps_per_epoch=...)``.

    Raises
    ------
    TypeError, ValueError
        On malformed labels or images, or lengths that differ.
    """
    labels = _check_labels(labels)
    _check_images(images, len(labels))
    batch_size = _check_positive_int(batch_size, "batch_size")
    seed = _check_seed(seed)
    table = _ClassTable(labels)
    per_epoch = (
        table.n
        if triplets_per_epoch is None
        else _check_positive_int(triplets_per_epoch, "triplets_per_epoch")
    )
    if per_epoch > table.n:
        raise ValueError(
            f"triplets_per_epoch={per_epoch} exceeds the {table.n} examples "
            "(one anchor each)"
        )
    steps = per_epoch // batch_size
    if steps == 0:
        raise ValueError(
            f"batch_size={batch_size} is larger than the {per_epoch} triplets per epoch"
        )
    _check_flag(indices_only, "indices_only")

    def epoch_triplets(epoch):
        seeds = tf.stack([tf.constant(seed, tf.int64), epoch])
        return tf.data.Dataset.from_tensor_slices(
            _draw_random_triplets(table, seeds, steps * batch_size)
        )

    ds = (
        tf.data.Dataset.counter(dtype=tf.int64)
        .flat_map(epoch_triplets)
        .batch(batch_size, drop_remainder=True)
    )
    if indices_only:
        return _finish(ds), steps
    images_t = tf.constant(images)
    ds = ds.map(
        lambda b: _gather_triplets(images_t, b), num_parallel_calls=_PARALLEL_CALLS
    )
    return _finish(ds), steps


def pk_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    p: int,
    k: int,
    seed: int = 0,
    indices_only: bool = False,
) -> tf.data.Dataset:
    """An endless stream of P x K class-balanced batches for online mining.

    Batch ``b`` holds the images at ``pk_batch_indices(labels, p, k, ...)[b]``.

    Parameters
    ----------
    images : numpy.ndarray
        Images, shape ``(N, ...)``, any numeric dtype.
    labels : numpy.ndarray
        Integer class ids, shape ``(N,)`` or ``(N, 1)``.
    p, k : int
        Classes per batch and examples per class (see :func:`pk_batch_indices`).
    seed : int, default 0
    indices_only : bool, default False
        Yield each batch's ``int64`` image positions, shape ``(p * k,)``,
        instead of ``(x, y)``.

    Returns
    -------
    tf.data.Dataset
        Infinite; elements ``(x, y)`` with ``x`` ``float32`` of shape
        ``(p * k, ...)`` and ``y`` ``int64`` labels of shape ``(p * k,)``
        (with ``indices_only``, the positions).
        Use ``model.fit(..., steps_per_epoch=...)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`pk_batch_indices`, and if images and labels differ in length.
    """
    labels = _check_labels(labels)
    _check_images(images, len(labels))
    table = _check_pk(labels, p, k)
    seed = _check_seed(seed)
    _check_flag(indices_only, "indices_only")

    def positions(step):
        return _draw_pk_batch(
            table, tf.stack([tf.constant(seed, tf.int64), step]), p, k
        )

    if indices_only:
        return _finish(
            tf.data.Dataset.counter(dtype=tf.int64).map(
                positions, num_parallel_calls=_PARALLEL_CALLS
            )
        )
    images_t, labels_t = tf.constant(images), tf.constant(labels)

    def batch(step):
        idx = positions(step)
        return tf.cast(tf.gather(images_t, idx), tf.float32), tf.gather(labels_t, idx)

    return _finish(
        tf.data.Dataset.counter(dtype=tf.int64).map(
            batch, num_parallel_calls=_PARALLEL_CALLS
        )
    )


def split_indices(
    labels: np.ndarray, fraction: float, seed: int = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """Split positions into a training part and a stratified held-out part.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer class ids, shape ``(N,)`` or ``(N, 1)``.
    fraction : float
        Share of each class held out, in (0, 1).
    seed : int, default 0

    Returns
    -------
    train, held_out : numpy.ndarray
        Sorted ``int64`` positions; disjoint, together all of ``0 .. N-1``.
        Each class contributes ``round(fraction * count)`` examples (at least
        one) to ``held_out``.

    Raises
    ------
    TypeError, ValueError
        On malformed labels, or ``fraction`` outside (0, 1).
    """
    labels = _check_labels(labels)
    if isinstance(fraction, bool) or not isinstance(fraction, (float, int)):
        raise TypeError(f"fraction must be a float, got {type(fraction).__name__}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}")
    seed = _check_seed(seed)
    rng = np.random.default_rng(seed)
    held = []
    for idx in class_indices(labels).values():
        m = min(max(1, int(round(fraction * len(idx)))), len(idx) - 1)
        held.append(rng.choice(idx, size=m, replace=False))
    held_out = np.sort(np.concatenate(held)).astype(np.int64)
    train = np.setdiff1d(np.arange(len(labels)), held_out).astype(np.int64)
    return train, held_out


def class_disjoint_folds(
    classes: Sequence[int], fold_size: int = 2
) -> List[Tuple[Tuple[int, ...], Tuple[int, ...]]]:
    """Class-disjoint folds: each group of ``fold_size`` classes held out in turn.

    The validation protocol for unseen classes (Musgrave et al. 2020): a
    candidate trains on the other classes and is scored by retrieval among
    the held-out classes' images, so validation asks the question a test on
    new classes asks.

    Parameters
    ----------
    classes : sequence of int
        The classes the choices may see (e.g. the digits 0-5), distinct,
        their number a multiple of ``fold_size``.
    fold_size : int, default 2
        Classes held out per fold, at least 2 (retrieval needs two classes).

    Returns
    -------
    list of (train_classes, held_out_classes)
        Tuples of int, one pair per fold, in the order of ``classes``; the
        held-out groups partition ``classes``.

    Raises
    ------
    TypeError
        If a class or ``fold_size`` is not an int.
    ValueError
        If the classes repeat, ``fold_size < 2``, or it does not divide
        their number, or fewer than two folds result.
    """
    if isinstance(fold_size, bool) or not isinstance(fold_size, (int, np.integer)):
        raise TypeError(f"fold_size must be an int, got {type(fold_size).__name__}")
    classes = tuple(classes)
    if not all(
        isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes
    ):
        raise TypeError(f"classes must be ints, got {classes!r}")
    classes = tuple(int(c) for c in classes)
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct, got {classes}")
    if fold_size < 2:
        raise ValueError(f"fold_size must be at least 2, got {fold_size}")
    if len(classes) % fold_size or len(classes) // fold_size < 2:
        raise ValueError(
            f"{len(classes)} classes do not make at least two folds of {fold_size}"
        )
    folds = []
    for start in range(0, len(classes), fold_size):
        held = classes[start : start + fold_size]
        folds.append((tuple(c for c in classes if c not in held), held))
    return folds


def check_classes(labels: np.ndarray, allowed: Sequence[int], what: str) -> None:
    """Refuse labels outside the classes a step may see (e.g. test classes).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer class ids, shape ``(N,)``.
    allowed : sequence of int
        The classes this step may see.
    what : str
        What the labels are, for the message (e.g. ``"fold 0's validation"``).

    Raises
    ------
    ValueError
        Naming the classes that are not allowed, and how many images have
        them.
    TypeError
        If ``labels`` is not an integer array.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{what}: labels must be integer class ids, got {labels.dtype}")
    bad = ~np.isin(labels, np.asarray(tuple(allowed)))
    if bad.any():
        raise ValueError(
            f"{what} may only see classes {sorted(allowed)}, got "
            f"{int(bad.sum())} images of {sorted(set(labels[bad].tolist()))}"
        )
