"""Embedding images fast, and the seed's per-class triplet evaluation.

The seed evaluated its model on test triplets built like the training ones:
for each class, the gaps ``d(a,p) - d(a,n)`` (squared distances) and "acc",
the share of gaps below zero (the anchor is closer to its positive). This
module reproduces that log and table.

Imports numpy, keras and tensorflow only.
"""

from __future__ import annotations

import weakref
from typing import Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "embed",
    "triplet_gaps",
    "seed_metric",
    "per_class_report",
    "format_seed_log",
    "triplet_difficulty",
    "DIFFICULTY_NAMES",
]


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return int(batch_size)


_COMPILED: "weakref.WeakKeyDictionary[keras.Model, object]" = (
    weakref.WeakKeyDictionary()
)


def _compiled(model: keras.Model):
    """One compiled inference function per model, dropped with the model."""
    fn = _COMPILED.get(model)
    if fn is None:
        # One trace per model: the batch dimension is left open.
        # The function holds the model through a weak reference: a strong one
        # (a closure over ``model``) would keep every model ever embedded alive,
        # since the dictionary's values are strong.
        ref = weakref.ref(model)

        def call(x):
            return ref()(x, training=False)

        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        fn = tf.function(call, input_signature=[spec])
        _COMPILED[model] = fn
    return fn


def embed(model: keras.Model, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Embed images in inference mode with a compiled function.

    About twice as fast as ``model.predict`` on CPU for this network (no
    callbacks, no per-batch Python bookkeeping).

    Parameters
    ----------
    model : keras.Model
        An embedding network: ``(batch, *image_shape) -> (batch, dim)``.
    images : numpy.ndarray
        Shape ``(N, *image_shape)``, any numeric dtype (cast to float32).
    batch_size : int, default 1024

    Returns
    -------
    numpy.ndarray
        ``float32`` embeddings of shape ``(N, dim)``.

    Raises
    ------
    TypeError
        If ``model`` is not a Keras model or ``images`` not an array.
    ValueError
        If ``images`` does not match the model's input shape.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy array, got {type(images).__name__}")
    expected = tuple(model.input_shape[1:])
    if tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"images must have shape (N, {', '.join(map(str, expected))}), "
            f"got {images.shape}"
        )
    batch_size = _check_batch_size(batch_size)
    fn = _compiled(model)
    out = []
    for start in range(0, len(images), batch_size):
        chunk = tf.constant(images[start : start + batch_size], tf.float32)
        out.append(fn(chunk).numpy())
    if not out:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def triplet_gaps(
    embeddings: np.ndarray, triplets: np.ndarray, squared: bool = True
) -> np.ndarray:
    """``d(a,p) - d(a,n)`` for each triplet; negative means correctly ordered.

    Parameters
    ----------
    embeddings : numpy.ndarray
        Shape ``(N, dim)``, float.
    triplets : numpy.ndarray
        Integer array of shape ``(T, 3)``: anchor, positive, negative rows of
        ``embeddings``.
    squared : bool, default True
        Squared Euclidean distances, as the seed used.

    Returns
    -------
    numpy.ndarray
        ``float64`` array of shape ``(T,)``.

    Raises
    ------
    TypeError, ValueError
        On arrays of the wrong type, shape or index range.
    """
    if not isinstance(embeddings, np.ndarray) or embeddings.ndim != 2:
        raise ValueError(
            f"embeddings must be a numpy array of shape (N, dim), got "
            f"{getattr(embeddings, 'shape', type(embeddings).__name__)}"
        )
    if not isinstance(triplets, np.ndarray) or not np.issubdtype(
        triplets.dtype, np.integer
    ):
        raise TypeError("triplets must be an integer numpy array of shape (T, 3)")
    if triplets.ndim != 2 or triplets.shape[1] != 3:
        raise ValueError(f"triplets must have shape (T, 3), got {triplets.shape}")
    if len(triplets) and (triplets.min() < 0 or triplets.max() >= len(embeddings)):
        raise ValueError(
            f"triplet indices must lie in 0..{len(embeddings) - 1}, found "
            f"{triplets.min()}..{triplets.max()}"
        )
    if not isinstance(squared, bool):
        raise TypeError(f"squared must be a bool, got {type(squared).__name__}")
    e = embeddings.astype(np.float64)
    a, p, n = e[triplets[:, 0]], e[triplets[:, 1]], e[triplets[:, 2]]
    d_ap = np.sum((a - p) ** 2, axis=1)
    d_an = np.sum((a - n) ** 2, axis=1)
    if not squared:
        d_ap, d_an = np.sqrt(d_ap), np.sqrt(d_an)
    return d_ap - d_an


def seed_metric(gaps: np.ndarray) -> float:
    """The seed's "acc": the share of triplets with ``d(a,p) < d(a,n)``.

    Parameters
    ----------
    gaps : numpy.ndarray
        Shape ``(T,)``, from :func:`triplet_gaps`; ``T`` > 0.

    Returns
    -------
    float
        In [0, 1]. Ties (gap exactly 0) count as wrong, as in the seed.

    Raises
    ------
    ValueError
        If ``gaps`` is empty, not 1-D, or holds NaN.
    """
    gaps = np.asarray(gaps)
    if gaps.ndim != 1 or len(gaps) == 0:
        raise ValueError(f"gaps must be a non-empty 1-D array, got shape {gaps.shape}")
    if np.isnan(gaps).any():
        raise ValueError("gaps holds NaN: the embeddings are not finite")
    return float(np.mean(gaps < 0))


def per_class_report(
    gaps: np.ndarray, anchor_labels: np.ndarray, classes: Optional[Sequence[int]] = None
) -> List[Dict[str, float]]:
    """The seed's per-class evaluation: min, max, avg of the gaps, and acc.

    Parameters
    ----------
    gaps : numpy.ndarray
        Shape ``(T,)``, from :func:`triplet_gaps`.
    anchor_labels : numpy.ndarray
        Shape ``(T,)``, integer class of each triplet's anchor.
    classes : sequence of int, optional
        Classes to report, in order (default: the sorted unique labels).

    Returns
    -------
    list of dict
        One dict per class with keys ``clz`` (int), ``n`` (int), ``min``,
        ``max``, ``avg`` (floats, of the gaps) and ``acc`` (share of gaps < 0).

    Raises
    ------
    ValueError
        If the lengths differ or a requested class has no triplet.
    """
    gaps = np.asarray(gaps, dtype=np.float64)
    anchor_labels = np.asarray(anchor_labels)
    if gaps.ndim != 1 or anchor_labels.shape != gaps.shape:
        raise ValueError(
            f"gaps and anchor_labels must be 1-D of the same length, got "
            f"{gaps.shape} and {anchor_labels.shape}"
        )
    if not np.issubdtype(anchor_labels.dtype, np.integer):
        raise TypeError(f"anchor_labels must be integers, got {anchor_labels.dtype}")
    if classes is None:
        classes = np.unique(anchor_labels).tolist()
    rows = []
    for c in classes:
        g = gaps[anchor_labels == c]
        if len(g) == 0:
            raise ValueError(f"class {c} has no triplet")
        rows.append(
            {
                "clz": int(c),
                "n": int(len(g)),
                "min": float(g.min()),
                "max": float(g.max()),
                "avg": float(g.mean()),
                "acc": float(np.mean(g < 0)),
            }
        )
    return rows


def format_seed_log(rows: List[Dict[str, float]]) -> str:
    """Render :func:`per_class_report` rows as the seed's log lines.

    Parameters
    ----------
    rows : list of dict
        From :func:`per_class_report`.

    Returns
    -------
    str
        For each class three lines, as the seed printed them::

            clz 0
            distance - min: -25.71, max: 1.38, avg: -9.26
            acc: 0.9966

    Raises
    ------
    ValueError
        If a row lacks one of the keys ``clz``, ``min``, ``max``, ``avg``, ``acc``.
    """
    lines = []
    for row in rows:
        missing = {"clz", "min", "max", "avg", "acc"} - set(row)
        if missing:
            raise ValueError(f"row lacks key(s) {sorted(missing)}: {row}")
        lines.append(f"clz {row['clz']}")
        lines.append(
            f"distance - min: {row['min']:.4f}, max: {row['max']:.4f}, "
            f"avg: {row['avg']:.4f}"
        )
        lines.append(f"acc: {row['acc']:.4f}")
    return "\n".join(lines)


#: Names of the three kinds of triplet, by code (see :func:`triplet_difficulty`).
DIFFICULTY_NAMES = ("easy", "semi-hard", "hard")


def triplet_difficulty(
    d_ap: np.ndarray, d_an: np.ndarray, margin: float = 1.0
) -> np.ndarray:
    """Classify triplets as easy (0), semi-hard (1) or hard (2).

    * easy: ``d(a,n) >= d(a,p) + margin`` (zero loss, no gradient);
    * semi-hard: ``d(a,p) < d(a,n) < d(a,p) + margin`` (ordered, inside the margin);
    * hard: ``d(a,n) <= d(a,p)`` (the negative is at least as close as the positive).

    Parameters
    ----------
    d_ap, d_an : numpy.ndarray
        Distances anchor-positive and anchor-negative, same shape ``(T,)``.
    margin : float, default 1.0

    Returns
    -------
    numpy.ndarray
        ``int64`` codes of shape ``(T,)``; names in :data:`DIFFICULTY_NAMES`.

    Raises
    ------
    ValueError
        If the shapes differ or the margin is negative.
    """
    d_ap, d_an = np.asarray(d_ap, dtype=np.float64), np.asarray(d_an, dtype=np.float64)
    if d_ap.shape != d_an.shape:
        raise ValueError(
            f"d_ap and d_an must have the same shape, got {d_ap.shape} and {d_an.shape}"
        )
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin < 0:
        raise ValueError(f"margin must be a non-negative float, got {margin!r}")
    codes = np.full(d_ap.shape, 1, dtype=np.int64)
    codes[d_an >= d_ap + margin] = 0
    codes[d_an <= d_ap] = 2
    return codes
